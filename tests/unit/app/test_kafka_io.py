"""The Kafka login as each client gets it: librdkafka's properties, Spark's, the Airflow connection's."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import pytest

from app.airflow.tasks import settings_for_run, spark_job_environment
from app.kafka_io import KafkaSetupError, client_config, jaas_config, security_config, spark_kafka_options
from app.runtime.airflow_server import Airflow
from app.runtime.kafka_broker import KafkaBroker
from app.settings import Settings, SettingsError
from tests.conftest import isolated_settings


@pytest.fixture
def sasl(tmp_path: Path) -> Settings:
    return isolated_settings(
        tmp_path,
        {
            "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "KAFKA_SASL_USERNAME": "clickstream",
            "KAFKA_SASL_PASSWORD": 'pa"ss\\word',
            "KAFKA_SSL_CA_LOCATION": "/etc/ca.pem",
        },
    )


def test_plaintext_adds_nothing(tmp_path: Path) -> None:
    settings = isolated_settings(tmp_path)
    assert security_config(settings) == {} and spark_kafka_options(settings) == {}
    assert "security.protocol" not in client_config(settings)


def test_sasl_ssl_for_librdkafka_and_for_spark(sasl: Settings) -> None:
    assert security_config(sasl) == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanisms": "SCRAM-SHA-512",
        "sasl.username": "clickstream",
        "sasl.password": 'pa"ss\\word',
        "ssl.ca.location": "/etc/ca.pem",
    }
    options = spark_kafka_options(sasl)
    assert options["kafka.security.protocol"] == "SASL_SSL" and options["kafka.sasl.mechanism"] == "SCRAM-SHA-512"
    assert options["kafka.ssl.truststore.location"] == "/etc/ca.pem"
    assert options["kafka.sasl.jaas.config"] == jaas_config("clickstream", 'pa"ss\\word')
    assert jaas_config("u", 'pa"ss\\word').endswith('password="pa\\"ss\\\\word";')


def test_a_login_without_password_names_the_settings(sasl: Settings) -> None:
    with pytest.raises(KafkaSetupError, match="KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"):
        security_config(replace(sasl, kafka_sasl_password=""))


def test_the_airflow_connection_carries_the_login_and_tasks_take_it(sasl: Settings) -> None:
    extra = json.loads(Airflow(sasl).environment()["AIRFLOW_CONN_KAFKA_DEFAULT"])["extra"]
    assert extra == {"bootstrap.servers": sasl.kafka_servers, **security_config(sasl)}
    task = settings_for_run({}, extra)
    assert (task.kafka_servers, task.kafka_security_protocol, task.kafka_sasl_password) == (
        sasl.kafka_servers,
        "SASL_SSL",
        'pa"ss\\word',
    )
    # the Spark job gets the password in its environment; Airflow gets it only inside its connection
    assert spark_job_environment(sasl)["KAFKA_SASL_PASSWORD"] == 'pa"ss\\word'
    assert "KAFKA_SASL_PASSWORD" not in Airflow(sasl).environment()


def test_the_local_broker_listens_with_the_same_login(sasl: Settings, tmp_path: Path) -> None:
    broker = KafkaBroker(
        replace(sasl, kafka_broker_ssl_certificate=str(tmp_path / "c.pem"), kafka_broker_ssl_key=str(tmp_path / "k"))
    )
    properties = broker.server_properties()
    assert properties["listeners"].startswith("SASL_SSL://127.0.0.1:")
    assert properties["sasl.mechanism.inter.broker.protocol"] == "SCRAM-SHA-512"
    assert properties["listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config"] == jaas_config(
        "clickstream", 'pa"ss\\word'
    )
    assert properties["ssl.keystore.type"] == "PEM" and properties["ssl.truststore.location"] == "/etc/ca.pem"
    assert properties["listener.security.protocol.map"] == "CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL"


def test_every_property_of_the_airflow_connection_reaches_the_tasks_kafka_clients(sasl: Settings) -> None:
    """The connection is taken whole: what a user adds there (TLS, OAuth via OIDC, tuning) reaches
    the producer and the consumers of a task, not only the servers and the login."""
    own = replace(sasl, kafka_client_config=json.dumps({"client.rack": "eu-1"}))
    extra = json.loads(Airflow(own).environment()["AIRFLOW_CONN_KAFKA_DEFAULT"])["extra"]
    assert extra["client.rack"] == "eu-1"  # `make up` puts KAFKA_CLIENT_CONFIG in the connection
    extra |= {"socket.keepalive.enable": True, "sasl.oauthbearer.scope": "kafka", "ssl.ca.location": "/etc/other.pem"}
    config = client_config(settings_for_run({}, extra))
    assert (config["client.rack"], config["socket.keepalive.enable"], config["sasl.oauthbearer.scope"]) == (
        "eu-1",
        True,
        "kafka",
    )
    assert config["ssl.ca.location"] == "/etc/other.pem" and config["sasl.password"] == 'pa"ss\\word'


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ('{"oauth_cb": "my.module.token"}', "oauth_cb: Python callbacks are not taken"),
        ("[1, 2]", "expected a JSON object"),
        ("{not json", "not JSON"),
        ('{"client.rack": ["a"]}', "client.rack: a property takes text, a number or true/false"),
    ],
)
def test_kafka_client_config_refuses_what_a_client_cannot_take(tmp_path: Path, raw: str, message: str) -> None:
    with pytest.raises(SettingsError, match=f"KAFKA_CLIENT_CONFIG: .*{re.escape(message)}"):
        isolated_settings(tmp_path, {"KAFKA_CLIENT_CONFIG": raw})
    with pytest.raises(SettingsError, match="kafka_default connection's extra"):
        settings_for_run({}, {"bootstrap.servers": "127.0.0.1:9092", "oauth_cb": "my.module.token"})


def test_the_topics_about_users_keep_records_a_bounded_time_and_the_others_are_compacted(tmp_path: Path) -> None:
    from app.kafka_io import project_topics

    settings = isolated_settings(tmp_path, {"KAFKA_CLICKS_RETENTION_HOURS": "24"})
    configs = {topic.name: topic.config for topic in project_topics(settings)}
    assert configs[settings.kafka_topic]["retention.ms"] == configs[settings.kafka_rejects_topic]["retention.ms"]
    assert configs[settings.kafka_topic]["retention.ms"] == str(24 * 3_600_000)
    for compacted in (settings.kafka_metadata_topic, settings.kafka_ledger_topic):
        assert configs[compacted]["cleanup.policy"] == "compact" and "retention.ms" not in configs[compacted]
    assert isolated_settings(tmp_path).kafka_clicks_retention_hours == 168
