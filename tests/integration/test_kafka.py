"""The local Kafka broker with confluent-kafka: topics, plain and transactional produce/consume."""

from __future__ import annotations

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from app.runtime.service import Service
from app.settings import Settings
from tests.integration.kafka_helpers import create_topic, read_all


def test_topic_round_trip(kafka: Service, settings: Settings) -> None:
    topic = create_topic(settings)
    metadata = AdminClient({"bootstrap.servers": settings.kafka_servers}).list_topics(topic, timeout=10)
    assert len(metadata.topics[topic].partitions) == 3

    producer = Producer({"bootstrap.servers": settings.kafka_servers, "enable.idempotence": True, "acks": "all"})
    for number in range(20):
        producer.produce(topic, key=str(number % 4).encode(), value=f"click-{number}".encode())
    assert producer.flush(30) == 0

    values = [message.value() for message in read_all(settings, topic)]
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

    committed = [message.value() for message in read_all(settings, topic, isolation="read_committed")]
    assert sorted(committed) == [f"committed-{n}".encode() for n in range(5)]
    uncommitted = read_all(settings, topic, isolation="read_uncommitted")
    assert len(uncommitted) == 8
