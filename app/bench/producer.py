"""`make bench`, items 1, 2 and the producer's part of 6: our producer against Kafka's own ceiling
(`ProducerPerformance`) and against the original project's way (one JSON message per row, a
per-row `send()` with kafka-python's defaults), on the same broker, with peak resident memory."""

from __future__ import annotations

import json
import logging
import os
import re
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from app.bench.common import listing, median_of, timed
from app.runtime import deps
from app.runtime.services import settings_environment
from app.settings import REPO_ROOT, Settings, with_own_names

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProducerRun:
    records: int
    seconds: float
    peak_rss_mib: float
    mean_value_bytes: float
    settings: Settings  # where it published: the Spark benchmarks drain these topics

    @property
    def records_per_second(self) -> float:
        return self.records / self.seconds


@dataclass(frozen=True)
class Rate:
    records: int
    records_per_second: float
    peak_rss_mib: float = float("nan")


def run_producer(settings: Settings) -> ProducerRun:
    """`python -m app.producer publish` as a user runs it, timed, with its peak RSS."""
    from app.kafka_io import end_offsets

    run = timed(
        [sys.executable, "-m", "app.producer", "publish", "--json"],
        {**os.environ, **settings_environment(settings)},
        REPO_ROOT,
        "our producer",
    )
    records = int(json.loads(run.stdout)["rows"])
    topics = [settings.kafka_topic, settings.kafka_metadata_topic]
    ends = end_offsets(settings, topics)
    return ProducerRun(
        records=records,
        seconds=run.seconds,
        peak_rss_mib=run.peak_rss_mib,
        mean_value_bytes=mean_value_size(settings, topics, sum(sum(p.values()) for p in ends.values())),
        settings=settings,
    )


def mean_value_size(settings: Settings, topics: list[str], limit: int, sample: int = 20_000) -> float:
    """The mean size of the message values in `topics` (a sample from the start)."""
    from confluent_kafka import Consumer

    from app.kafka_io import committed_reader_config

    consumer = Consumer(committed_reader_config(settings, "bench-sizes"))
    sizes: list[int] = []
    try:
        consumer.subscribe(topics)
        deadline = time.monotonic() + 60
        while len(sizes) < min(sample, limit) and time.monotonic() < deadline:
            messages = consumer.consume(1000, timeout=1.0)
            if not messages and sizes:
                break  # the topics' end (their offsets count transaction markers too)
            for message in messages:
                value = message.value() if message.error() is None else None
                if value is not None:
                    sizes.append(len(value))
    finally:
        consumer.close()
    return statistics.fmean(sizes) if sizes else 0.0


def run_ceiling(settings: Settings, records: int, record_size: int) -> Rate:
    """Kafka's ProducerPerformance: as many records of that size, acks=all, idempotent, transactional."""
    from app.kafka_io import TopicSpec, ensure_topics

    topic = f"bench-ceiling-{uuid.uuid4().hex[:8]}"
    ensure_topics(
        settings,
        [
            TopicSpec(
                topic, settings.kafka_topic_partitions, {"min.insync.replicas": str(settings.kafka_min_insync_replicas)}
            )
        ],
    )
    command = [
        deps.java_executable(),
        "-Xmx1g",
        "-cp",
        f"{deps.KAFKA_JARS_DIR}/*",
        "org.apache.kafka.tools.ProducerPerformance",
        *("--topic", topic, "--num-records", str(records), "--record-size", str(record_size)),
        *("--throughput", "-1", "--transactional-id", f"bench-ceiling-{uuid.uuid4().hex[:6]}"),
        *("--transaction-duration-ms", "1000"),
        "--producer-props",
        f"bootstrap.servers={settings.kafka_servers}",
        "acks=all",
        "enable.idempotence=true",
        "linger.ms=25",
        "compression.type=lz4",
    ]
    finished = subprocess.run(command, capture_output=True, text=True, check=False)
    summary = [line for line in finished.stdout.splitlines() if "records sent" in line]
    if finished.returncode != 0 or not summary:
        raise SystemExit(f"ProducerPerformance failed:\n{finished.stdout[-2000:]}{finished.stderr[-2000:]}")
    match = re.search(r"(\d+) records sent, ([\d.]+) records/sec", summary[-1])
    assert match is not None, summary[-1]
    return Rate(int(match.group(1)), float(match.group(2)))


def run_original(settings: Settings, data_dir: Path) -> Rate:
    """The original project's way (`app.bench.original_producer`) over the same files, timed."""
    from app.kafka_io import TopicSpec, ensure_topics

    files = sorted(data_dir.glob("clicks_hour_*.csv")) + sorted(data_dir.glob("articles_metadata.csv"))
    tag = uuid.uuid4().hex[:8]
    # the broker creates no topic on first use: both are made first, with our topics' layout
    ensure_topics(
        settings,
        [
            TopicSpec(
                name, settings.kafka_topic_partitions, {"min.insync.replicas": str(settings.kafka_min_insync_replicas)}
            )
            for name in (f"bench-original-clicks-{tag}", f"bench-original-articles-{tag}")
        ],
    )
    run = timed(
        [
            sys.executable,
            "-m",
            "app.bench.original_producer",
            settings.kafka_servers,
            f"bench-original-clicks-{tag}",
            f"bench-original-articles-{tag}",
            *map(str, files),
        ],
        dict(os.environ),
        REPO_ROOT,
        "the original project's producer",
    )
    records = int(run.stdout.split()[-1])
    return Rate(records, records / run.seconds, run.peak_rss_mib)


def producer_runs(settings: Settings, data_dir: Path, scratch: Path, runs: int) -> list[ProducerRun]:
    ours = []
    for number in range(1, runs + 1):
        result = run_producer(with_own_names(settings, scratch, "bench"))
        ours.append(result)
        log.info(
            "run %s: our producer %s records in %.1f s (%.0f records/s, peak %.0f MiB, mean value %.0f B)",
            number, result.records, result.seconds, result.records_per_second, result.peak_rss_mib,
            result.mean_value_bytes,
        )  # fmt: skip
    return ours


def producer_section(settings: Settings, data_dir: Path, ours: list[ProducerRun]) -> tuple[list[str], list[str], float]:
    """Items 1 and 2 of the report (each ceiling run beside one of ours); also the ceiling's median
    seconds for all the records, which the end-to-end item adds up."""
    ceilings, originals = [], []
    for number, result in enumerate(ours, start=1):
        ceiling = run_ceiling(settings, result.records, round(result.mean_value_bytes))
        ceilings.append(ceiling)
        log.info("run %s: ProducerPerformance %.0f records/s", number, ceiling.records_per_second)
        original = run_original(settings, data_dir)
        originals.append(original)
        log.info(
            "run %s: the original way %s records, %.0f records/s, peak %.0f MiB",
            number, original.records, original.records_per_second, original.peak_rss_mib,
        )  # fmt: skip
    our_rate = median_of(run.records_per_second for run in ours)
    ceiling_rate = median_of(run.records_per_second for run in ceilings)
    original_rate = median_of(run.records_per_second for run in originals)
    ratio, speedup = our_rate / ceiling_rate, our_rate / original_rate
    lines = [
        "## 1. Producer against Kafka's own ceiling",
        "",
        f"Our producer published {ours[0].records:,} records (every click file and the catalogue) "
        f"of {median_of(run.mean_value_bytes for run in ours):.0f} bytes on average, in one "
        "transaction per file, `acks=all`, idempotent, `linger.ms=25`, lz4; `ProducerPerformance` sent as "
        "many records of that size with the same properties, committing a transaction every second, "
        "to a fresh topic of the same layout on the same broker. Each run is the whole command "
        "(`python -m app.producer publish`), its start-up, file reading and parsing included.",
        "",
        "| | records/s (median) | runs |",
        "|---|---:|---|",
        f"| our producer | {our_rate:,.0f} | {listing(run.records_per_second for run in ours)} |",
        f"| ProducerPerformance | {ceiling_rate:,.0f} | {listing(run.records_per_second for run in ceilings)} |",
        "",
        f"**Ratio: {ratio:.2f}** (goal: at least 0.5): "
        + ("met." if ratio >= 0.5 else f"missed, by a factor of {0.5 / ratio:.1f}."),
        "",
        "## 2. Producer against the original project's way",
        "",
        "The same files sent the way the original project sent them: each file read with pandas, one "
        "JSON message per row from `iterrows()`, a `send()` per row with kafka-python "
        f"{_kafka_python_version()}'s `KafkaProducer` at its defaults (no batching or compression "
        "tuning, no idempotence, no transactions), one `flush()` at the end "
        "(`app/bench/original_producer.py`), to fresh topics on the same broker.",
        "",
        "| | records/s (median) | runs |",
        "|---|---:|---|",
        f"| our producer | {our_rate:,.0f} | {listing(run.records_per_second for run in ours)} |",
        f"| the original way | {original_rate:,.0f} | {listing(run.records_per_second for run in originals)} |",
        "",
        f"**Ours is {speedup:.1f} times faster** (goal: at least 10): "
        + ("met." if speedup >= 10 else f"missed, by a factor of {10 / speedup:.1f}."),
        "",
    ]
    memory = [
        f"- our producer (GNU time): median {median_of(run.peak_rss_mib for run in ours):.0f} MiB "
        f"(runs: {listing(run.peak_rss_mib for run in ours)} MiB)",
        f"- the original way: median {median_of(run.peak_rss_mib for run in originals):.0f} MiB "
        f"(runs: {listing(run.peak_rss_mib for run in originals)} MiB)",
    ]
    return lines, memory, ours[0].records / ceiling_rate


def _kafka_python_version() -> str:
    try:
        import kafka

        return str(kafka.__version__)
    except ImportError:
        return "?"
