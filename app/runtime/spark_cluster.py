"""The Spark standalone cluster service (a master and a worker from pyspark's own Spark), for running
the jobs the way they run on a cluster.
"""

from __future__ import annotations

import logging

from app.runtime import deps
from app.runtime.process import ManagedProcess, ServiceStartError, port_accepts
from app.runtime.service import Health, Service

log = logging.getLogger(__name__)


class SparkCluster(Service):
    """A Spark standalone cluster from pyspark's own Spark: a master at `SPARK_MASTER_URL`
    (spark://<bind host>:<port>) and `SPARK_CLUSTER_WORKERS` workers, all on the bind host.

    Started on demand (`python -m app.runtime up spark-cluster`); the jobs use it when
    `SPARK_MASTER_URL` names it. The same jobs run on any other standalone cluster the same way.
    """

    name = "spark-cluster"
    start_timeout = 120.0

    def master_port(self) -> int | None:
        """The master's port when SPARK_MASTER_URL names a master on this machine, else None."""
        master = self.settings.spark_master
        host, _, port = master.removeprefix("spark://").partition(":")
        if not master.startswith("spark://") or host not in (self.settings.bind_host, "localhost") or not port:
            return None
        return int(port)

    def ports(self) -> list[tuple[int, str]]:
        port = self.master_port()
        return [(port, "SPARK_MASTER_URL")] if port else []

    def start(self) -> None:
        if self.master_port() is None:
            raise ServiceStartError(
                f"spark-cluster: SPARK_MASTER_URL={self.settings.spark_master} does not name a master on this "
                f"machine; set it to spark://{self.settings.bind_host}:7077 to run the jobs on the local cluster"
            )
        super().start()

    def processes(self) -> list[ManagedProcess]:
        spark_class = str(deps.spark_home() / "bin" / "spark-class")
        host = self.settings.bind_host
        environment = {
            "SPARK_HOME": str(deps.spark_home()),
            "SPARK_LOCAL_IP": host,
            "SPARK_DAEMON_MEMORY": "384m",
            "SPARK_WORKER_DIR": str(self.home / "work"),
            "SPARK_LOCAL_DIRS": str(self.home / "local"),
        }
        master = self.managed(
            "spark-master",
            # web UI on a free port: the Spark UI of a job running here keeps SPARK_UI_PORT
            [
                spark_class,
                "org.apache.spark.deploy.master.Master",
                "--host",
                host,
                "--port",
                str(self.master_port() or 7077),
                "--webui-port",
                "0",
            ],
            environment,
        )
        workers = [
            self.managed(
                f"spark-worker-{number}",
                [
                    spark_class,
                    "org.apache.spark.deploy.worker.Worker",
                    "--host",
                    host,
                    "--webui-port",
                    "0",
                    "--memory",
                    self.settings.spark_cluster_worker_memory,
                    self.settings.spark_master,
                ],
                environment,
            )
            for number in range(1, self.settings.spark_cluster_workers + 1)
        ]
        return [master, *workers]

    def prepare(self) -> None:
        for folder in ("work", "local"):
            (self.home / folder).mkdir(parents=True, exist_ok=True)

    def health(self) -> Health:
        """Healthy when the master accepts connections and every worker has registered with it."""
        port = self.master_port() or 7077
        if not port_accepts(self.settings.bind_host, port):
            return Health(False, f"master port {port} not accepting connections")
        registered = sum(1 for line in self._master_log_lines() if "Registering worker" in line)
        wanted = self.settings.spark_cluster_workers
        if registered < wanted:
            return Health(False, f"{registered} of {wanted} worker(s) registered")
        return Health(True, f"master {self.settings.spark_master}, {wanted} worker(s)")

    def _master_log_lines(self) -> list[str]:
        log_file = self.settings.logs_dir / "spark-master.log"
        return log_file.read_text(errors="replace").splitlines() if log_file.exists() else []
