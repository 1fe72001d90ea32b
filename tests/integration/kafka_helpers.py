"""Test helpers on the real broker: make a topic, read a topic to its end."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from typing import Any

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from app.settings import Settings


def create_topic(settings: Settings, partitions: int = 3) -> str:
    name = f"test-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": settings.kafka_servers})  # must outlive the future
    futures = admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
    futures[name].result(timeout=30)
    return name


def read_all(settings: Settings, topic: str, isolation: str = "read_committed", timeout: float = 30.0) -> list[Any]:
    """Every message of `topic` from the start up to its end now (or what came within `timeout`)."""
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_servers,
            "group.id": f"test-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "isolation.level": isolation,
        }
    )
    try:
        metadata = consumer.list_topics(topic, timeout=10)
        partitions = [TopicPartition(topic, p) for p in metadata.topics[topic].partitions]
        ends = {}
        for partition in partitions:
            low, high = consumer.get_watermark_offsets(partition, timeout=10)
            partition.offset = low
            if high > low:
                ends[partition.partition] = high
        if not ends:
            return []
        consumer.assign(partitions)
        messages: list[Any] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            positions = consumer.position([TopicPartition(topic, p) for p in ends])
            if all(position.offset >= ends[position.partition] for position in positions):
                break
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                messages.append(message)
        return messages
    finally:
        consumer.close()


def header(message: Any, name: str) -> str:
    """A message header's value as text ("" when absent)."""
    for key, value in message.headers() or []:
        if key == name:
            return bytes(value).decode()
    return ""


def count_by_header(messages: list[Any], name: str) -> Counter[str]:
    return Counter(header(message, name) for message in messages)
