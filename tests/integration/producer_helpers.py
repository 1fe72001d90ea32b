"""For the integration tests: the producer run as a user runs it, a big file to interrupt, and
the check that every row of every file is in the topics once."""

from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from app.producer.ledger import read_ledger
from app.producer.publisher import PublishOptions, publish
from app.schemas import CLICKS, HEADER_SOURCE_FILE
from app.settings import REPO_ROOT, Settings
from tests.integration.kafka_helpers import count_by_header, header, read_all

SAMPLE = REPO_ROOT / "app" / "data"
CLICK_HEADER = ",".join(CLICKS.columns)
BIG_FILE = "clicks_hour_050.csv"


def csv_rows(path: Path) -> int:
    with open(path, newline="") as handle:
        return sum(1 for _ in csv.reader(handle)) - 1


def copy_sample(settings: Settings) -> dict[str, int]:
    rows = {}
    for path in sorted(SAMPLE.glob("*.csv")):
        shutil.copy(path, settings.producer_data_root_directory / path.name)
        rows[path.name] = csv_rows(path)
    return rows


def producer_cli(settings: Settings, *args: str, own_group: bool = False) -> subprocess.Popen[str]:
    """The producer's command line; with `own_group` it leads a process group of its own (its
    shards' processes join it), which a test can stop or kill whole."""
    env = {**os.environ, **settings.environment()}
    return subprocess.Popen(
        [sys.executable, "-m", "app.producer", *args],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=own_group,
    )


def with_a_big_click_file(settings: Settings, copies: int = 60) -> dict[str, int]:
    """The sample plus one large click file (the sample's clicks `copies` times: 252,480 rows by
    default), so that a kill lands inside its transaction; returns the rows of every file. The
    topics exist afterwards."""
    rows = copy_sample(settings)
    rows.update(add_a_big_click_file(settings, BIG_FILE, copies))
    publish(settings, PublishOptions(kinds=[]))  # topics exist before a watcher subscribes
    return rows


def add_a_big_click_file(settings: Settings, name: str, copies: int) -> dict[str, int]:
    """A click file of the sample's clicks `copies` times (4,208 rows, about 300 kB, each time)."""
    body = b"".join((SAMPLE / f"clicks_hour_00{h}.csv").read_bytes().split(b"\n", 1)[1] for h in range(3))
    (settings.producer_data_root_directory / name).write_bytes((CLICK_HEADER + "\n").encode() + body * copies)
    return {name: 4208 * copies}


def wait_until_part_of_the_big_file_is_sent(
    settings: Settings, publisher: subprocess.Popen[str], big_files: tuple[str, ...] = (BIG_FILE,)
) -> int:
    """Watch the clicks topic (uncommitted records too) until 20,000 rows of each big file are
    sent, then freeze the publisher (SIGSTOP; its whole process group when it leads one, shards
    included) so that whatever the caller does next lands in the middle of the file however fast
    the machine publishes; `resume` lets it go on. The publisher must still be running when the
    rows are seen. Returns how many rows of the big files were seen."""
    watcher = Consumer(
        {
            "bootstrap.servers": settings.kafka_servers,
            "group.id": f"w-{uuid.uuid4().hex[:6]}",  # never joins: the partitions are assigned
            "isolation.level": "read_uncommitted",
            "enable.auto.commit": False,
        }
    )
    topic = watcher.list_topics(settings.kafka_topic, timeout=30).topics[settings.kafka_topic]
    watcher.assign([TopicPartition(settings.kafka_topic, p, OFFSET_BEGINNING) for p in topic.partitions])
    seen = dict.fromkeys(big_files, 0)
    deadline = time.monotonic() + 120
    try:
        while min(seen.values()) < 20_000 and time.monotonic() < deadline and publisher.poll() is None:
            for message in watcher.consume(1000, 0.2):
                if message.error() is None and header(message, HEADER_SOURCE_FILE) in seen:
                    seen[header(message, HEADER_SOURCE_FILE)] += 1
        if publisher.poll() is None:
            _signal(publisher, signal.SIGSTOP)
    finally:
        watcher.close()
    assert publisher.poll() is None, "the producer finished before it could be interrupted mid-file"
    assert min(seen.values()) >= 20_000, f"too few rows of the big files seen in 120 s: {seen}"
    return sum(seen.values())


def _signal(publisher: subprocess.Popen[str], number: int) -> None:
    """To the publisher's process group when it leads one (its shards with it), else to it alone."""
    if os.getpgid(publisher.pid) == publisher.pid:
        os.killpg(publisher.pid, number)
    else:
        publisher.send_signal(number)


def resume(publisher: subprocess.Popen[str]) -> None:
    """Let a publisher frozen by `wait_until_part_of_the_big_file_is_sent` go on."""
    _signal(publisher, signal.SIGCONT)


def assert_each_row_once(settings: Settings, rows: dict[str, int]) -> None:
    clicks = count_by_header(read_all(settings, settings.kafka_topic), HEADER_SOURCE_FILE)
    articles = count_by_header(read_all(settings, settings.kafka_metadata_topic), HEADER_SOURCE_FILE)
    assert {**clicks, **articles} == rows
    assert {name: e.rows for name, e in read_ledger(settings).items()} == rows


def publishing_the_big_file(settings: Settings) -> subprocess.Popen[str]:
    """The producer CLI, started and returned frozen once part of the big file is sent (killed if
    that fails); `resume` it after the fault."""
    producer = producer_cli(settings, "publish")
    try:
        wait_until_part_of_the_big_file_is_sent(settings, producer)
    except BaseException:
        producer.kill()
        raise
    return producer
