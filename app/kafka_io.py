"""Kafka access of clickstream: the client configuration and the topics, in one place.

`client_config()` is the base of every Kafka client the project makes (producer, consumers,
admin); `ensure_topics()` creates the project's topics when they are missing, with partitions,
replication and `min.insync.replicas` from the settings.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from app.settings import Settings

log = logging.getLogger(__name__)


class KafkaSetupError(RuntimeError):
    """A topic could not be created or the broker could not be reached; the message says which."""


# librdkafka's own log lines (one per failed connection attempt, many a second) go to this logger,
# quiet by default: the project's code turns a failure into one clear error of its own.
client_log = logging.getLogger("app.kafka_io.librdkafka")
client_log.setLevel(logging.CRITICAL)


class ClientErrors:
    """The `error_cb` of a client: keeps the broker's last refusal of the login, which librdkafka
    reports only here (the request that failed says no more than that it timed out)."""

    def __init__(self) -> None:
        self.authentication: str | None = None

    def __call__(self, error: KafkaError) -> None:
        if error.code() == KafkaError._AUTHENTICATION:
            self.authentication = error.str()


def extra_client_properties(settings: Settings) -> dict[str, Any]:
    """`KAFKA_CLIENT_CONFIG`'s librdkafka properties (validated JSON object), empty when unset."""
    return dict(json.loads(settings.kafka_client_config)) if settings.kafka_client_config else {}


def client_config(settings: Settings) -> dict[str, Any]:
    """Settings every Kafka client of the project shares: servers, the login when there is one, and
    `KAFKA_CLIENT_CONFIG`'s properties (the Airflow Kafka connection's, in a task), which win."""
    return {
        "bootstrap.servers": settings.kafka_servers,
        "client.id": "clickstream",
        "logger": client_log,
        "error_cb": ClientErrors(),
        **security_config(settings),
        **extra_client_properties(settings),
    }


def committed_reader_config(settings: Settings, group: str) -> dict[str, Any]:
    """A throwaway consumer (a group of its own, nothing committed) that reads what transactions
    committed, from the start of its topics."""
    return {
        **client_config(settings),
        "group.id": f"{group}-{uuid.uuid4().hex[:8]}",
        "enable.auto.commit": False,
        "isolation.level": "read_committed",
        "auto.offset.reset": "earliest",
    }


def security_config(settings: Settings) -> dict[str, str]:
    """librdkafka's security properties (the Airflow Kafka connection carries the same)."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return {}
    if not settings.kafka_sasl_username or not settings.kafka_sasl_password:
        raise KafkaSetupError(f"KAFKA_SECURITY_PROTOCOL={protocol} needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD")
    config = {
        "security.protocol": protocol,
        "sasl.mechanisms": settings.kafka_sasl_mechanism,
        "sasl.username": settings.kafka_sasl_username,
        "sasl.password": settings.kafka_sasl_password,
    }
    if protocol == "SASL_SSL" and settings.kafka_ssl_ca_location:
        config["ssl.ca.location"] = settings.kafka_ssl_ca_location
    return config


def jaas_config(username: str, password: str) -> str:
    """The Java clients' SCRAM login line."""

    def quoted(text: str) -> str:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'

    module = "org.apache.kafka.common.security.scram.ScramLoginModule"
    return f"{module} required username={quoted(username)} password={quoted(password)};"


def spark_kafka_options(settings: Settings) -> dict[str, str]:
    """The same connection for Spark's Kafka source (Java client properties, `kafka.`-prefixed)."""
    config = security_config(settings)
    if not config:
        return {}
    options = {
        "kafka.security.protocol": config["security.protocol"],
        "kafka.sasl.mechanism": config["sasl.mechanisms"],
        "kafka.sasl.jaas.config": jaas_config(settings.kafka_sasl_username, settings.kafka_sasl_password),
    }
    if "ssl.ca.location" in config:
        options |= {"kafka.ssl.truststore.type": "PEM", "kafka.ssl.truststore.location": config["ssl.ca.location"]}
    return options


def unreachable(
    settings: Settings, config: Mapping[str, Any], error: Exception, client: AdminClient | None = None
) -> KafkaSetupError:
    """The error for a client that got no answer: a refused login if the broker said so, else unreachable."""
    if client is not None:
        client.poll(0.5)  # serves the error callbacks, where a refused login is reported
    errors = config.get("error_cb")
    refusal = errors.authentication if isinstance(errors, ClientErrors) else None
    if refusal:
        return KafkaSetupError(
            f"Kafka at KAFKA_SERVERS={settings.kafka_servers} refused the login of "
            f"KAFKA_SASL_USERNAME={settings.kafka_sasl_username} ({settings.kafka_sasl_mechanism}): {refusal}; "
            "check KAFKA_SASL_PASSWORD"
        )
    return KafkaSetupError(f"cannot reach Kafka at KAFKA_SERVERS={settings.kafka_servers}: {error}")


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)


def project_topics(settings: Settings) -> list[TopicSpec]:
    """The topics the producer writes: clicks and rejects (kept `KAFKA_CLICKS_RETENTION_HOURS`),
    article metadata and ledger (compacted)."""
    durable = {"min.insync.replicas": str(settings.kafka_min_insync_replicas)}
    compacted = {**durable, "cleanup.policy": "compact"}
    # records about users (clicks, and rejected lines of click files) are kept a bounded time
    personal = {**durable, "retention.ms": str(settings.kafka_clicks_retention_hours * 3_600_000)}
    return [
        TopicSpec(settings.kafka_topic, settings.kafka_topic_partitions, personal),
        TopicSpec(settings.kafka_metadata_topic, settings.kafka_topic_partitions, compacted),
        TopicSpec(settings.kafka_ledger_topic, 1, compacted),  # one partition: one order of ledger records
        TopicSpec(settings.kafka_rejects_topic, 1, personal),
    ]


def ensure_topics(settings: Settings, topics: list[TopicSpec] | None = None, timeout: float = 15.0) -> list[str]:
    """Create the topics that are missing; return the names of those created."""
    config = client_config(settings)
    admin = AdminClient(config)
    try:
        existing = set(admin.list_topics(timeout=timeout).topics)
    except KafkaException as error:
        raise unreachable(settings, config, error, admin) from None
    missing = [topic for topic in (topics or project_topics(settings)) if topic.name not in existing]
    if not missing:
        return []
    futures = admin.create_topics(
        [
            NewTopic(
                topic.name,
                num_partitions=topic.partitions,
                replication_factor=settings.kafka_replication_factor,
                config=topic.config,
            )
            for topic in missing
        ],
        operation_timeout=timeout,
    )
    created = []
    for name, future in futures.items():
        try:
            future.result(timeout=timeout)
            created.append(name)
            log.info("created topic %s", name)
        except KafkaException as error:
            if error.args and error.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS:
                continue  # another producer created it meanwhile
            raise KafkaSetupError(
                f"cannot create topic {name} (KAFKA_REPLICATION_FACTOR={settings.kafka_replication_factor}, "
                f"KAFKA_MIN_INSYNC_REPLICAS={settings.kafka_min_insync_replicas}): {error}"
            ) from None
    wait_for_leaders(admin, [topic.name for topic in missing], timeout)
    return created


def wait_for_leaders(admin: AdminClient, names: list[str], timeout: float) -> None:
    """Wait until every partition of these topics has a leader: a new topic is not usable before."""
    deadline = time.monotonic() + timeout
    while True:
        topics = admin.list_topics(timeout=timeout).topics
        waiting = [
            name
            for name in names
            if name not in topics
            or topics[name].error is not None
            or not topics[name].partitions
            or any(p.leader < 0 or p.error is not None for p in topics[name].partitions.values())
        ]
        if not waiting:
            return
        if time.monotonic() > deadline:
            raise KafkaSetupError(f"topic(s) {', '.join(waiting)} have no partition leader after {timeout:.0f} s")
        time.sleep(0.2)


def end_offsets(settings: Settings, topics: list[str], timeout: float = 15.0) -> dict[str, dict[int, int]]:
    """Each partition's end as a `read_committed` reader sees it (the last stable offset), per topic.

    A topic that does not exist yet has no partitions here. After a committed transaction this is
    the offset just past its commit marker, the same offset a Spark Kafka source reads up to.
    """
    return topic_offsets(settings, topics, "latest", timeout)


def topic_offsets(
    settings: Settings, topics: list[str], which: str = "latest", timeout: float = 15.0
) -> dict[str, dict[int, int]]:
    """The `earliest` or `latest` (last stable) offset of every partition of these topics."""
    from confluent_kafka import IsolationLevel, TopicPartition
    from confluent_kafka.admin import OffsetSpec  # type: ignore[attr-defined]

    config = {**client_config(settings), "socket.timeout.ms": int(timeout * 1000)}
    admin = AdminClient(config)
    try:
        metadata = admin.list_topics(timeout=timeout).topics
    except KafkaException as error:
        raise unreachable(settings, config, error, admin) from None
    spec = OffsetSpec.earliest() if which == "earliest" else OffsetSpec.latest()  # type: ignore[no-untyped-call]
    wanted = {
        TopicPartition(topic, partition): spec
        for topic in topics
        if topic in metadata
        for partition in metadata[topic].partitions
    }
    result: dict[str, dict[int, int]] = {topic: {} for topic in topics if topic in metadata}
    if not wanted:
        return result
    futures = admin.list_offsets(wanted, isolation_level=IsolationLevel.READ_COMMITTED, request_timeout=timeout)
    for partition, future in futures.items():
        result[partition.topic][partition.partition] = int(future.result(timeout=timeout).offset)
    return result
