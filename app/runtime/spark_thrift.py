"""The Spark Thrift (JDBC) server service that `make sql` queries the Hive tables through."""

from __future__ import annotations

import logging

from app.runtime import deps
from app.runtime.process import ManagedProcess, port_accepts
from app.runtime.service import Health, Service

log = logging.getLogger(__name__)


class SparkThriftServer(Service):
    """The Spark Thrift (JDBC/ODBC) server on the shared metastore, for SQL on the Hive tables.

    Started by `make sql` (not by `make up`: it is one more Spark driver); `make down` stops it.
    No authentication: it listens on the bind host (loopback) only.
    """

    name = "sql"
    start_timeout = 180.0
    port_field = "spark_thrift_port"

    def processes(self) -> list[ManagedProcess]:
        from app.spark_session import spark_conf, spark_environment

        conf = {**spark_conf(self.settings), "spark.ui.port": "0"}  # any free port: job UIs keep theirs
        command = [
            str(deps.spark_home() / "bin" / "spark-submit"),
            "--class",
            "org.apache.spark.sql.hive.thriftserver.HiveThriftServer2",
            "--name",
            "clickstream-sql",
        ]
        for key, value in conf.items():
            command += ["--conf", f"{key}={value}"]
        command += [
            "spark-internal",
            "--hiveconf",
            f"hive.server2.thrift.bind.host={self.settings.bind_host}",
            "--hiveconf",
            f"hive.server2.thrift.port={self.settings.spark_thrift_port}",
        ]
        return [self.managed("sql", command, spark_environment(self.settings))]

    def prepare(self) -> None:
        for folder in ("tmp", "local", "scratch"):
            (self.settings.state_dir / "spark" / folder).mkdir(parents=True, exist_ok=True)

    def health(self) -> Health:
        port = self.settings.spark_thrift_port
        if port_accepts(self.settings.bind_host, port):
            return Health(True, f"JDBC {self.settings.spark_thrift_jdbc_url} (make sql)")
        return Health(False, f"port {port} not accepting connections")
