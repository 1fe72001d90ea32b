"""The HDFS service: a NameNode and a DataNode of Hadoop 3.5.0 (the Hadoop whose client Spark 4.2
ships), on the bind host, their blocks and namespace in the state folder.

These are HDFS's own daemons (`org.apache.hadoop.hdfs.server.namenode.NameNode`, `...DataNode`)
from Maven Central (`jvm/hdfs/pom.xml`), not a simulation: Spark reaches them through the
`hdfs://` file system it ships, Python through WebHDFS on the NameNode's HTTP port (which also
serves the NameNode's web UI). Started on demand: `python -m app.runtime up hdfs`.

The NameNode's ports are settings (`HDFS_NAMENODE_PORT`, `HDFS_NAMENODE_HTTP_PORT`); the DataNode's
are drawn by the system at start (it tells the NameNode, which tells every client), so that one
machine can run several. One DataNode keeps one replica of each block (`dfs.replication` 1).
"""

from __future__ import annotations

import json
import logging
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

from app.runtime import deps
from app.runtime.process import ManagedProcess, ServiceStartError
from app.runtime.service import Health, Service, hadoop_xml, java_service_flags
from app.settings import setting_variable
from app.storage import HDFS_CLOSE_RETRY

log = logging.getLogger(__name__)

LOG4J_CONSOLE = """\
log4j.rootLogger=INFO,console
log4j.appender.console=org.apache.log4j.ConsoleAppender
log4j.appender.console.layout=org.apache.log4j.PatternLayout
log4j.appender.console.layout.ConversionPattern=%d{ISO8601} %-5p [%c{1}] %m%n
"""


class Hdfs(Service):
    """A NameNode and one DataNode on the bind host."""

    name = "hdfs"
    start_timeout = 120.0

    @property
    def conf_dir(self) -> Path:
        return self.home / "conf"

    @property
    def url(self) -> str:
        """The file system's URI, the prefix of a location on it (`hdfs://127.0.0.1:8020`)."""
        return f"hdfs://{self.settings.bind_host}:{self.settings.hdfs_namenode_port}"

    @property
    def web_url(self) -> str:
        """The NameNode's web UI, JMX and WebHDFS."""
        return f"http://{self.settings.bind_host}:{self.settings.hdfs_namenode_http_port}"

    def wanted(self) -> bool:
        """Whether the lake, the checkpoints or the warehouse live on this HDFS (then `make up` starts it)."""
        here = {
            f"{host}:{self.settings.hdfs_namenode_port}" for host in (self.settings.bind_host, "127.0.0.1", "localhost")
        }
        locations = (
            self.settings.parquet_destination_path,
            self.settings.check_point_location,
            self.settings.hive_warehouse_dir,
        )
        return any(location.scheme == "hdfs" and location.authority in here for location in locations)

    def ports(self) -> list[tuple[int, str]]:
        fields = ("hdfs_namenode_port", "hdfs_namenode_http_port")
        return [(getattr(self.settings, field), setting_variable(field)) for field in fields]

    def site(self) -> dict[str, dict[str, str]]:
        """`core-site.xml` and `hdfs-site.xml`, written before each start."""
        host = self.settings.bind_host
        return {
            "core-site.xml": {"fs.defaultFS": self.url, "hadoop.tmp.dir": str(self.home / "tmp")},
            "hdfs-site.xml": {
                "dfs.namenode.name.dir": str(self.home / "name"),
                "dfs.datanode.data.dir": str(self.home / "data"),
                "dfs.replication": "1",
                "dfs.namenode.rpc-address": f"{host}:{self.settings.hdfs_namenode_port}",
                "dfs.namenode.http-address": f"{host}:{self.settings.hdfs_namenode_http_port}",
                "dfs.datanode.address": f"{host}:0",
                "dfs.datanode.http.address": f"{host}:0",
                "dfs.datanode.ipc.address": f"{host}:0",
                "dfs.namenode.secondary.http-address": f"{host}:0",
                # one DataNode: leave safe mode as soon as its blocks are reported, not 30 s later
                "dfs.namenode.safemode.extension": "0",
                # its blocks' replicas are checked against one node, not three
                "dfs.namenode.replication.min": "1",
                # files written over WebHDFS are closed by the DataNode's client: no 400 ms waits
                **HDFS_CLOSE_RETRY,
            },
        }

    def classpath(self) -> str:
        deps.jars_in(deps.HDFS_JARS_DIR)  # names the setup step when missing
        return ":".join([str(self.conf_dir), str(deps.HDFS_WEBAPPS_DIR), f"{deps.HDFS_JARS_DIR}/*"])

    def _daemon(self, main_class: str) -> list[str]:
        return [
            *java_service_flags(self.settings, self.home, self.settings.hdfs_heap),
            f"-Dhadoop.log.dir={self.settings.logs_dir}",
            "-cp",
            self.classpath(),
            main_class,
        ]

    def processes(self) -> list[ManagedProcess]:
        return [
            self.managed("hdfs-namenode", self._daemon("org.apache.hadoop.hdfs.server.namenode.NameNode")),
            self.managed("hdfs-datanode", self._daemon("org.apache.hadoop.hdfs.server.datanode.DataNode")),
        ]

    def prepare(self) -> None:
        if not deps.HDFS_WEBAPPS_DIR.exists():
            raise deps.MissingDependencyError(f"HDFS's web pages are not unpacked; {deps.SETUP_HINT}")
        self.conf_dir.mkdir(parents=True, exist_ok=True)
        for file_name, properties in self.site().items():
            (self.conf_dir / file_name).write_text(hadoop_xml(properties))
        (self.conf_dir / "log4j.properties").write_text(LOG4J_CONSOLE)
        if not (self.home / "name" / "current" / "VERSION").exists():
            self._format()

    def _format(self) -> None:
        """A new, empty namespace (only when the NameNode's folder has none)."""
        command = self._daemon("org.apache.hadoop.hdfs.server.namenode.NameNode")
        command += ["-format", "-nonInteractive", "-clusterId", "clickstream"]
        log_file = self.settings.logs_dir / "hdfs-format.log"
        log_file.parent.mkdir(parents=True, exist_ok=True)
        with log_file.open("w") as output:
            result = subprocess.run(command, stdout=output, stderr=subprocess.STDOUT, cwd=self.home, check=False)
        if result.returncode != 0:
            raise ServiceStartError(f"hdfs: formatting the NameNode failed (exit {result.returncode}); see {log_file}")

    def namenode_state(self) -> dict[str, object]:
        """The NameNode's `FSNamesystemState` bean (live DataNodes, safe mode, capacity)."""
        query = f"{self.web_url}/jmx?qry=Hadoop:service=NameNode,name=FSNamesystemState"
        with urllib.request.urlopen(query, timeout=5) as response:  # noqa: S310 - our own loopback URL
            beans = json.load(response)["beans"]
        return dict(beans[0]) if beans else {}

    def health(self) -> Health:
        """Healthy when the NameNode is out of safe mode and a DataNode has registered with it."""
        try:
            state = self.namenode_state()
        except (urllib.error.URLError, OSError, ValueError) as error:
            return Health(False, f"NameNode at {self.web_url} not answering: {error}")
        if state.get("FSState") != "Operational":
            return Health(False, f"NameNode in state {state.get('FSState')!r} (safe mode)")
        live = int(str(state.get("NumLiveDataNodes", 0)))
        if live < 1:
            return Health(False, "no DataNode registered with the NameNode yet")
        return Health(True, f"{self.url}, {live} DataNode(s), UI {self.web_url}")
