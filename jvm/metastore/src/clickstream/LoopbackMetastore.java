package clickstream;

import java.util.concurrent.TimeUnit;

import org.apache.hadoop.hive.common.auth.HiveAuthUtils;
import org.apache.hadoop.hive.conf.HiveConf;
import org.apache.hadoop.hive.metastore.HiveMetaStore;
import org.apache.hadoop.hive.metastore.IHMSHandler;
import org.apache.hadoop.hive.metastore.TUGIBasedProcessor;
import org.apache.hadoop.hive.thrift.TUGIContainingTransport;
import org.apache.thrift.protocol.TBinaryProtocol;
import org.apache.thrift.server.TServer;
import org.apache.thrift.server.TThreadPoolServer;
import org.apache.thrift.transport.TServerSocket;

/**
 * Runs the Hive Metastore thrift service (the Hive 2.3 one bundled with pyspark) on one address.
 *
 * <p>Hive 2.3's own {@code HiveMetaStore.main} always listens on every interface. This launcher
 * serves the same handler, processor and transport (plain, non-SASL thrift with the UGI-carrying
 * transport that Hive clients use) on the address given, so a laptop's metastore is reachable only
 * from loopback by default.
 *
 * <p>Usage: {@code java -cp <conf dir>:<pyspark jars>/*:<classes> clickstream.LoopbackMetastore HOST PORT}
 * with a {@code hive-site.xml} in the conf dir.
 */
public final class LoopbackMetastore {
  private LoopbackMetastore() {}

  public static void main(String[] args) throws Exception {
    if (args.length != 2) {
      System.err.println("usage: LoopbackMetastore HOST PORT");
      System.exit(2);
    }
    String host = args[0];
    int port = Integer.parseInt(args[1]);
    HiveConf conf = new HiveConf(HiveMetaStore.HMSHandler.class);

    IHMSHandler handler = HiveMetaStore.newRetryingHMSHandler(
        new HiveMetaStore.HMSHandler("clickstream metastore", conf, false), conf);
    TServerSocket socket = HiveAuthUtils.getServerSocket(host, port);
    TThreadPoolServer.Args serverArgs = new TThreadPoolServer.Args(socket)
        .processor(new TUGIBasedProcessor<>(handler))
        .transportFactory(new TUGIContainingTransport.Factory())
        .protocolFactory(new TBinaryProtocol.Factory())
        .inputProtocolFactory(new TBinaryProtocol.Factory())
        .minWorkerThreads(conf.getIntVar(HiveConf.ConfVars.METASTORESERVERMINTHREADS))
        .maxWorkerThreads(conf.getIntVar(HiveConf.ConfVars.METASTORESERVERMAXTHREADS))
        .stopTimeoutVal(5)
        .stopTimeoutUnit(TimeUnit.SECONDS);
    TServer server = new TThreadPoolServer(serverArgs);
    Runtime.getRuntime().addShutdownHook(new Thread(server::stop, "metastore-shutdown"));
    System.out.println("clickstream metastore listening on " + host + ":" + port);
    System.out.flush();
    server.serve();
  }
}
