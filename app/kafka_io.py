"""Kafka access of clickstream: the client configuration and the topics, in one place.

`client_config()` is the base of every Kafka client the project makes (producer, consumers,
admin); `ensure_topics()` creates the project's topics when they are missing, with partitions,
replication and `min.insync.replicas` from the settings.
"""

from __future__ import annotations

import logging
import time
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


def client_config(settings: Settings) -> dict[str, Any]:
    """Settings every Kafka client of the project shares."""
    return {"bootstrap.servers": settings.kafka_servers, "client.id": "clickstream", "logger": client_log}


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)


def project_topics(settings: Settings) -> list[TopicSpec]:
    """The topics the producer writes: clicks, article metadata (compacted), ledger, rejects."""
    durable = {"min.insync.replicas": str(settings.kafka_min_insync_replicas)}
    compacted = {**durable, "cleanup.policy": "compact"}
    return [
        TopicSpec(settings.kafka_topic, settings.kafka_topic_partitions, durable),
        TopicSpec(settings.kafka_metadata_topic, settings.kafka_topic_partitions, compacted),
        TopicSpec(settings.kafka_ledger_topic, 1, compacted),  # one partition: one order of ledger records
        TopicSpec(settings.kafka_rejects_topic, 1, durable),
    ]


def ensure_topics(settings: Settings, topics: list[TopicSpec] | None = None, timeout: float = 15.0) -> list[str]:
    """Create the topics that are missing; return the names of those created."""
    admin = AdminClient(client_config(settings))
    try:
        existing = set(admin.list_topics(timeout=timeout).topics)
    except KafkaException as error:
        raise KafkaSetupError(f"cannot reach Kafka at KAFKA_SERVERS={settings.kafka_servers}: {error}") from None
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

    admin = AdminClient({**client_config(settings), "socket.timeout.ms": int(timeout * 1000)})
    try:
        metadata = admin.list_topics(timeout=timeout).topics
    except KafkaException as error:
        raise KafkaSetupError(f"cannot reach Kafka at KAFKA_SERVERS={settings.kafka_servers}: {error}") from None
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
