"""A 3-node KRaft cluster on loopback (replication 3, `min.insync.replicas` 2): one broker SIGKILLed
while a file is published, another while the streaming job drains; nothing lost, nothing twice."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from confluent_kafka.admin import AdminClient

from app.kafka_io import client_config
from app.runtime.kafka_broker import KafkaCluster
from app.runtime.process import ManagedProcess, process_group_alive
from app.runtime.service import Service
from app.settings import Settings
from app.table_checks import check_tables
from tests.conftest import free_ports, own_pipeline
from tests.integration.jobs import committed_batches, start_job
from tests.integration.producer_helpers import (
    assert_each_row_once,
    publishing_the_big_file,
    resume,
    with_a_big_click_file,
)

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


@pytest.fixture(scope="module")
def cluster(settings: Settings, metastore: Service, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaCluster]:
    folder = tmp_path_factory.mktemp("cluster")
    own = replace(
        own_pipeline(settings, folder / "pipeline"),
        state_dir=folder / "state",
        kafka_servers=",".join(f"127.0.0.1:{port}" for port in free_ports(3)),
        kafka_controller_port=free_ports(3, consecutive=True)[0],
        kafka_replication_factor=3,
        kafka_min_insync_replicas=2,
        kafka_broker_heap="384m",
        spark_max_offsets_per_trigger=80_000,  # the drain takes two micro-batches
    )
    service = KafkaCluster(own)
    try:
        service.start()
        yield service
    finally:
        service.stop()


def node_leading(settings: Settings, cluster: KafkaCluster, avoid: int | None = None) -> tuple[int, ManagedProcess]:
    """The node that leads most partitions of the clicks topic (not `avoid`), and its process."""
    topic = (
        AdminClient(client_config(settings)).list_topics(settings.kafka_topic, timeout=10).topics[settings.kafka_topic]
    )
    led: dict[int, int] = {}
    for partition in topic.partitions.values():
        if partition.leader != avoid:
            led[partition.leader] = led.get(partition.leader, 0) + 1
    node = max(led, key=lambda leader: led[leader])
    return node, next(p for p in cluster.processes() if p.name == f"kafka-node-{node}")


def kill(process: ManagedProcess) -> None:
    pid = process.read_pid()
    assert pid is not None
    os.killpg(pid, signal.SIGKILL)
    while process_group_alive(pid):
        time.sleep(0.2)


def rejoined(settings: Settings, cluster: KafkaCluster, timeout: float = 120.0) -> None:
    """Wait until a restarted node is registered again and back in every click partition's in-sync
    replicas (a client reading while it is still catching up can see its handle dropped)."""
    topic = settings.kafka_topic
    deadline = time.monotonic() + timeout
    while True:
        health = cluster.health()
        if health.healthy:
            partitions = AdminClient(client_config(settings)).list_topics(topic, timeout=10).topics[topic].partitions
            if all(len(p.isrs) == 3 for p in partitions.values()):
                return
            health_text = f"in-sync replicas: {sorted((p.id, len(p.isrs)) for p in partitions.values())}"
        else:
            health_text = health.detail
        assert time.monotonic() < deadline, f"the restarted broker did not rejoin in {timeout:.0f} s: {health_text}"
        time.sleep(0.5)


def test_a_broker_killed_while_publishing_and_another_while_draining_lose_and_duplicate_nothing(
    cluster: KafkaCluster, spark: SparkSession, tmp_path: Path
) -> None:
    settings = cluster.settings
    metadata = AdminClient(client_config(settings)).list_topics(timeout=10)
    assert len(metadata.brokers) == 3
    rows = with_a_big_click_file(settings, copies=30)  # 126k rows; creates the topics: 3 replicas each
    topic = AdminClient(client_config(settings)).list_topics(settings.kafka_topic, timeout=10).topics
    assert all(len(p.replicas) == 3 for p in topic[settings.kafka_topic].partitions.values())

    # publishing: the leader of most click partitions dies in the middle of the big file
    producer = publishing_the_big_file(settings)
    first_victim, process = node_leading(settings, cluster)
    kill(process)
    resume(producer)  # it meets the leader gone in the middle of the file
    output, _ = producer.communicate(timeout=600)
    assert producer.returncode == 0, output[-3000:]  # two of three replicas are enough: it goes on
    process.start()
    rejoined(settings, cluster)
    assert_each_row_once(settings, rows)

    # draining: another leader dies after the first micro-batch
    log = tmp_path / "drain.log"
    job = start_job(settings, "streaming_job.py", "--trigger", "available-now", log=log)
    try:
        deadline = time.monotonic() + 300
        while not committed_batches(settings.check_point_location):
            assert job.poll() is None, f"the drain ended early ({job.returncode}):\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)
        _, process = node_leading(settings, cluster, avoid=first_victim)
        kill(process)
        assert job.wait(600) == 0, log.read_text()[-4000:]
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
    assert len(committed_batches(settings.check_point_location)) > 1
    process.start()
    rejoined(settings, cluster)

    raw = spark.table(f"`{settings.hive_database}`.`raw_clicks`")
    clicks = sum(count for name, count in rows.items() if name.startswith("clicks_"))
    assert raw.count() == raw.select("kafka_partition", "kafka_offset").distinct().count() == clicks
    report = check_tables(settings)
    assert report.problems == [] and report.files_checked == len(rows), report
