"""Real services for the integration tests, started once per test session on free ports.

Each fixture starts only its own service, in a temporary state folder, and stops it (by pid)
when the session ends, so tests that need only Kafka do not wait for Airflow.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from app.airflow.client import AirflowClient
from app.runtime.airflow_server import Airflow
from app.runtime.hdfs import Hdfs
from app.runtime.hive_metastore import HiveMetastore
from app.runtime.kafka_broker import KafkaBroker
from app.runtime.postgres import PostgresServer
from app.runtime.seaweedfs import SeaweedFs
from app.runtime.service import Service
from app.settings import Settings
from app.spark_session import spark_application
from tests.conftest import isolated_settings, reachable_folder

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


ALERT_SECRET = "T0/B0/test-only-webhook-secret"  # the part of a webhook URL that is its password


class AlertReceiver:
    """A local webhook: keeps the JSON body of every POST it gets (the session's failure alerts)."""

    def __init__(self) -> None:
        received = self.received = []  # type: list[dict[str, Any]]

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                received.append({"path": self.path, **json.loads(body)})
                self.send_response(204)
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/{ALERT_SECRET}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def for_run(self, run_id: str) -> list[dict[str, Any]]:
        return [alert for alert in self.received if alert.get("run_id") == run_id]


@pytest.fixture(scope="session")
def alerts() -> Iterator[AlertReceiver]:
    receiver = AlertReceiver()
    try:
        yield receiver
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory, alerts: AlertReceiver) -> Settings:
    # an empty data folder: Airflow's scheduled runs find nothing to publish; tests bring their own
    empty = tmp_path_factory.mktemp("no-data")
    return isolated_settings(
        reachable_folder("clickstream-test-state-"),
        {
            "PRODUCER_DATA_ROOT_DIRECTORY": str(empty),
            "SPARK_TRIGGER_INTERVAL": "5 seconds",
            "ALERT_WEBHOOK_URL": alerts.url,
            # a scheduled run with nothing new is skipped in seconds, not ten minutes
            "AIRFLOW_SENSOR_POKE_SECONDS": "5",
            "AIRFLOW_SENSOR_TIMEOUT_SECONDS": "20",
            # the tests' Spark jobs are short: a driver compiles with C1 alone and collects with one
            # thread, a third of the CPU of each job (docs/design/spark-start.md)
            "SPARK_DRIVER_JAVA_OPTIONS": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC",
            # clickstream_catch_up (paused unless a test unpauses it) looks for due days every minute
            "AIRFLOW_CATCH_UP_SCHEDULE": "* * * * *",
        },
    )


def _running(service: Service) -> Iterator[Service]:
    try:
        service.start()
        yield service
    finally:
        service.stop()


@pytest.fixture(scope="session")
def kafka(settings: Settings) -> Iterator[Service]:
    yield from _running(KafkaBroker(settings))


@pytest.fixture(scope="session")
def postgres(settings: Settings) -> Iterator[Service]:
    """The PostgreSQL server of the metastore's catalogue and Airflow's metadata database."""
    yield from _running(PostgresServer(settings))


@pytest.fixture(scope="session")
def metastore(settings: Settings, postgres: Service) -> Iterator[Service]:
    yield from _running(HiveMetastore(settings))


@pytest.fixture(scope="session")
def hdfs(settings: Settings) -> Iterator[Service]:
    """A NameNode and a DataNode, started by the first test that needs them."""
    yield from _running(Hdfs(settings))


@pytest.fixture(scope="session")
def s3(settings: Settings, spark: SparkSession) -> Iterator[Service]:
    """SeaweedFS's S3 API, started by the first test that needs it. The session's Spark (built for
    tables on the local disk) is given S3A's settings for it, as an application on S3 gets them."""
    from app.settings import s3_credentials
    from app.spark_session import s3a_properties

    store = SeaweedFs(settings)
    try:
        store.start()
        key, secret = s3_credentials(settings)
        hadoop = spark.sparkContext._jsc.hadoopConfiguration()
        properties = {
            **s3a_properties(settings),
            "fs.s3a.aws.credentials.provider": "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider",
            "fs.s3a.access.key": key,
            "fs.s3a.secret.key": secret,
        }
        for name, value in properties.items():
            hadoop.set(name, value)
        yield store
    finally:
        store.stop()


@pytest.fixture(scope="session")
def airflow(settings: Settings, postgres: Service) -> Iterator[Service]:
    yield from _running(Airflow(settings))


def admin_client(settings: Settings) -> AirflowClient:
    """A client of the session's Airflow, logged in as the configured admin user."""
    return AirflowClient(settings.airflow_url, settings.airflow_admin_user, settings.airflow_admin_password)


@pytest.fixture
def airflow_client(airflow: Service, settings: Settings) -> AirflowClient:
    return admin_client(settings)


@pytest.fixture(scope="session")
def spark(settings: Settings, metastore: Service) -> Iterator[SparkSession]:
    with spark_application(settings, "clickstream-tests") as session:
        yield session


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """An empty data folder of the test's own, for the files a run publishes."""
    folder = tmp_path / "data"
    folder.mkdir()
    return folder


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration/" in str(item.path):
            item.add_marker(pytest.mark.integration)
