"""The local Kafka broker with confluent-kafka: topics, plain and transactional produce/consume."""

from __future__ import annotations

import time
import uuid

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient

from app.runtime.service import Service
from app.settings import Settings
from tests.integration.kafka_helpers import create_topic


def consume_all(settings: Settings, topic: str, expected: int, isolation: str = "read_committed") -> list[bytes]:
    """Read the topic from the start: until a poll comes back empty after `expected`, or 30 s."""
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_servers,
            "group.id": f"test-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": isolation,
        }
    )
    consumer.subscribe([topic])
    values: list[bytes] = []
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            message = consumer.poll(1.0)
            if message is None:
                if len(values) >= expected:
                    break  # more than expected would have come with the rest
                continue
            assert message.error() is None, message.error()
            values.append(message.value() or b"")
    finally:
        consumer.close()
    return values


def test_topic_round_trip(kafka: Service, settings: Settings) -> None:
    topic = create_topic(settings)
    metadata = AdminClient({"bootstrap.servers": settings.kafka_servers}).list_topics(topic, timeout=10)
    assert len(metadata.topics[topic].partitions) == 3

    producer = Producer({"bootstrap.servers": settings.kafka_servers, "enable.idempotence": True, "acks": "all"})
    for number in range(20):
        producer.produce(topic, key=str(number % 4).encode(), value=f"click-{number}".encode())
    assert producer.flush(30) == 0

    values = consume_all(settings, topic, expected=20)
    assert sorted(values) == sorted(f"click-{n}".encode() for n in range(20))


def test_transaction_is_all_or_nothing_for_read_committed(kafka: Service, settings: Settings) -> None:
    topic = create_topic(settings, partitions=2)
    producer = Producer({"bootstrap.servers": settings.kafka_servers, "transactional.id": f"tx-{topic}"})
    producer.init_transactions(30)

    producer.begin_transaction()
    for number in range(5):
        producer.produce(topic, key=b"k", value=f"committed-{number}".encode())
    producer.commit_transaction(30)

    producer.begin_transaction()
    for number in range(3):
        producer.produce(topic, key=b"k", value=f"aborted-{number}".encode())
    producer.flush(30)
    producer.abort_transaction(30)

    committed = consume_all(settings, topic, expected=5, isolation="read_committed")
    assert sorted(committed) == [f"committed-{n}".encode() for n in range(5)]
    uncommitted = consume_all(settings, topic, expected=8, isolation="read_uncommitted")
    assert len(uncommitted) == 8
