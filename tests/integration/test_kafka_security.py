"""Kafka with SASL/SCRAM over TLS: a broker of the project's that requires a login; the producer,
the Spark job and the Airflow Kafka connection log in from the settings; a wrong password is named;
the password appears in no log and in no output of `status`."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from app.airflow.tasks import run_settings
from app.kafka_io import KafkaSetupError, client_config
from app.producer.publisher import publish
from app.runtime.airflow_server import Airflow
from app.runtime.kafka_broker import KafkaBroker
from app.runtime.service import Service
from app.settings import Settings
from tests.conftest import free_ports, own_pipeline, run_module
from tests.integration.expected import expected_tables
from tests.integration.jobs import CLICK_FILES, SAMPLE, aggregates, failing_job, run_job, table_rows

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

PASSWORD = "s3cret-Only-For-This-Test-7f2c"


def make_certificates(folder: Path) -> tuple[str, str, str]:
    """A CA, and a certificate it signed for 127.0.0.1 with an unencrypted PKCS#8 key (openssl)."""
    folder.mkdir(parents=True)

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=clickstream test CA")  # fmt: skip
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "broker.key", "-out", "broker.csr", "-subj", "/CN=x")
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl(
        "x509", "-req", "-in", "broker.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "broker.pem", "-days", "2", "-extfile", "san.ext",
    )  # fmt: skip
    return str(folder / "ca.pem"), str(folder / "broker.pem"), str(folder / "broker.key")


@pytest.fixture(scope="module")
def secure(settings: Settings, metastore: Service, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """A pipeline of its own on a broker that takes SASL/SCRAM over TLS only (its own state folder)."""
    folder = tmp_path_factory.mktemp("secure")
    kafka_port, controller_port = free_ports(2)
    ca, certificate, key = make_certificates(folder / "certificates")
    secured = replace(
        own_pipeline(settings, folder / "pipeline"),
        state_dir=folder / "state",
        kafka_servers=f"127.0.0.1:{kafka_port}",
        kafka_controller_port=controller_port,
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_username="clickstream",
        kafka_sasl_password=PASSWORD,
        kafka_ssl_ca_location=ca,
        kafka_broker_ssl_certificate=certificate,
        kafka_broker_ssl_key=key,
    )
    broker = KafkaBroker(secured)
    try:
        broker.start()
        yield secured
    finally:
        broker.stop()


def test_the_broker_refuses_clients_without_the_login(secure: Settings) -> None:
    # the broker is up and answers a client with the login: the refusals below are its own
    assert AdminClient({**client_config(secure), "socket.timeout.ms": 3000}).list_topics(timeout=10).brokers
    for config in (
        {"bootstrap.servers": secure.kafka_servers},  # no TLS, no login
        {
            "bootstrap.servers": secure.kafka_servers,
            "security.protocol": "SSL",
            "ssl.ca.location": secure.kafka_ssl_ca_location,
        },  # TLS, no login
    ):
        with pytest.raises(KafkaException):
            AdminClient({**config, "socket.timeout.ms": 3000}).list_topics(timeout=5)


def test_a_wrong_password_is_named(secure: Settings) -> None:
    with pytest.raises(KafkaSetupError) as refused:
        publish(replace(secure, kafka_sasl_password="not-the-password"))
    message = str(refused.value)
    assert "refused the login of KAFKA_SASL_USERNAME=clickstream (SCRAM-SHA-512)" in message, message
    assert "check KAFKA_SASL_PASSWORD" in message and "not-the-password" not in message


def test_producer_spark_and_the_airflow_connection_log_in_from_the_settings(
    secure: Settings, spark: SparkSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the Airflow Kafka connection the runtime gives Airflow, read back through the provider's hook
    connection = Airflow(secure).environment()["AIRFLOW_CONN_KAFKA_DEFAULT"]
    monkeypatch.setenv("AIRFLOW_CONN_KAFKA_DEFAULT", connection)
    from airflow.providers.apache.kafka.hooks.client import KafkaAdminClientHook

    assert KafkaAdminClientHook(kafka_config_id="kafka_default").get_conn.list_topics(timeout=10).brokers

    # a task's settings come from that connection: the producer publishes with them
    task_settings = run_settings({"params": {}})
    task_settings = replace(
        secure,
        **{
            field: getattr(task_settings, field)
            for field in ("kafka_servers", "kafka_security_protocol", "kafka_sasl_username", "kafka_sasl_password")
        },
    )
    for path in [*CLICK_FILES, SAMPLE / "articles_metadata.csv"]:
        shutil.copy(path, task_settings.producer_data_root_directory / path.name)
    report = publish(task_settings)
    assert not report.refused and report.to_dict()["rows"] == 4208 + 551

    # the Spark job: refused with a wrong password (one clear line), then logs in and lands everything
    log = tmp_path / "jobs.log"
    code, output = failing_job(replace(secure, kafka_sasl_password="not-the-password"), log)
    assert code == 5, output[-3000:]
    stopped = next(line for line in output.splitlines() if "the streaming query stopped" in line)
    assert "SaslAuthenticationException" in stopped and "KAFKA_SASL_PASSWORD" in stopped, stopped
    run_job(secure, "streaming_job.py", "--trigger", "available-now", log=log)
    assert len(table_rows(spark, secure, "raw_clicks")) == 4208
    assert aggregates(spark, secure) == expected_tables(CLICK_FILES, SAMPLE / "articles_metadata.csv")

    # the password is in no log (broker, jobs, Spark's event logs) and not in `status`
    status = run_module(secure, "app.runtime", "status", "kafka", environment={"KAFKA_SASL_PASSWORD": PASSWORD})
    assert status.returncode == 0 and "running" in status.stdout, status.stdout + status.stderr
    texts: dict[str, Any] = {"status": status.stdout + status.stderr, "jobs.log": log.read_text()}
    for path in secure.logs_dir.rglob("*"):
        if path.is_file():
            texts[str(path)] = path.read_text(errors="replace")
    for path in (secure.state_dir / "spark").rglob("*"):
        if path.is_file() and path.suffix == ".zstd":
            texts[str(path)] = subprocess.run(["zstd", "-dc", str(path)], capture_output=True, check=True).stdout
            texts[str(path)] = texts[str(path)].decode(errors="replace")
    assert any("events" in name for name in texts)  # the event logs were read
    leaking = [name for name, text in texts.items() if PASSWORD in text]
    assert leaking == []
    assert KafkaBroker(secure).properties_file.stat().st_mode & 0o077 == 0  # the broker's own file: owner only
