"""The local runtime: the services started in dependency order and stopped in reverse, which
`python -m app.runtime up|down|status` (and `make up`) drive.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import ClassVar

from app.runtime.airflow_server import Airflow
from app.runtime.hdfs import Hdfs
from app.runtime.hive_metastore import HiveMetastore
from app.runtime.kafka_broker import KafkaBroker, KafkaCluster
from app.runtime.postgres import PostgresServer
from app.runtime.redis import Redis
from app.runtime.seaweedfs import SeaweedFs
from app.runtime.service import Service, ServiceStatus
from app.runtime.spark_cluster import SparkCluster
from app.runtime.spark_history import SparkHistoryServer
from app.runtime.spark_thrift import SparkThriftServer
from app.settings import Settings

log = logging.getLogger(__name__)


class LocalRuntime:
    """The local services, started in dependency order and stopped in reverse.

    Without names: `up` starts the default services (not the SQL server, which `make sql` starts,
    nor the Spark cluster, nor PostgreSQL when both databases are elsewhere, nor HDFS unless tables
    live there: `CLICKSTREAM_STORAGE=hdfs`, nor the S3 store unless they live on it:
    `CLICKSTREAM_STORAGE=s3`, nor Redis but for the CeleryExecutor), and `down` and
    `status` cover every service, the on-demand ones when they run.
    """

    EVERY: ClassVar[dict[str, type[Service]]] = {
        "kafka": KafkaBroker,
        "kafka-cluster": KafkaCluster,
        "postgres": PostgresServer,
        "hdfs": Hdfs,
        "s3": SeaweedFs,
        "metastore": HiveMetastore,
        "spark-history": SparkHistoryServer,
        "redis": Redis,
        "airflow": Airflow,
        "sql": SparkThriftServer,
        "spark-cluster": SparkCluster,
    }
    ON_DEMAND = ("sql", "spark-cluster", "postgres", "kafka-cluster", "hdfs", "s3", "redis")

    def __init__(self, settings: Settings, names: list[str] | None = None) -> None:
        unknown = set(names or []) - set(self.EVERY)
        if unknown:
            raise ValueError(f"unknown service(s) {sorted(unknown)}; known: {sorted(self.EVERY)}")
        self.named = bool(names)
        self.services: list[Service] = [
            cls(settings) for name, cls in self.EVERY.items() if (name in names if names else True)
        ]

    def _defaults(self) -> list[Service]:
        if self.named:
            return self.services
        return [service for service in self.services if self._by_default(service)]

    def _by_default(self, service: Service) -> bool:
        """Always-on services; on-demand ones while they run; PostgreSQL while a database lives there;
        HDFS or the S3 store while tables or checkpoints live there; Redis with the CeleryExecutor."""
        if isinstance(service, PostgresServer | Hdfs | SeaweedFs | Redis) and service.wanted():
            return True
        return service.name not in self.ON_DEMAND or bool(service.status().pids)

    def _with_their_database(self, services: list[Service]) -> list[Service]:
        """Named services, after the local PostgreSQL when one of them keeps its database there
        (`up metastore` starts PostgreSQL first; `down metastore` leaves it to Airflow)."""
        if any(isinstance(service, PostgresServer) for service in services):
            return services
        settings = services[0].settings if services else None
        if settings is None:
            return services
        if any(
            (isinstance(service, HiveMetastore) and not settings.hive_metastore_db_url)
            or (isinstance(service, Airflow) and not settings.airflow_database_url)
            for service in services
        ):
            return [PostgresServer(settings), *services]
        return services

    def up(self, report: Callable[[str], None] | None = None) -> None:
        """Start the services in order; `report` gets a line as each starts and once it is healthy
        (a failure raises, naming the service, its log file and the log's last lines)."""
        for service in self._with_their_database(self.services) if self.named else self._defaults():
            started = time.monotonic()
            if report is not None:
                report(f"{service.name}: starting")
            service.start()
            if report is not None:
                report(f"{service.name}: healthy after {time.monotonic() - started:.1f} s")

    def down(self) -> None:
        for service in reversed(self.services):
            service.stop()

    def status(self) -> list[ServiceStatus]:
        return [service.status() for service in self._defaults()]
