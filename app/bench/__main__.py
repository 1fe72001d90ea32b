"""Benchmarks against ceilings measured in the same run, on the same machine: `make bench`.

Each figure is the median of `--runs` runs (3 by default) and is set beside a ceiling measured in
the same invocation, so the ratios hold on a noisy shared machine. The report is written to
`docs/benchmarks.md` with the machine's cores, memory, Java and library versions.

Measured so far (issue 7 lists the rest: the original project's per-row sending, the Spark drain
against a bare Kafka-to-Parquet query, a whole Airflow run, streaming latency, the Spark driver's
memory):
1. Our producer publishing every click file and the article catalogue of the data folder
   (`BENCH_DATA_DIR`, transactions, `acks=all`, idempotence), against Kafka's own
   `ProducerPerformance` sending as many records of the same mean size with `acks=all`,
   idempotence and transactions to the same broker and the same topic layout.
2. The producer's peak resident memory in those runs.

The benchmark starts its own broker (a fresh state folder, free loopback ports) so that every run
begins with empty topics and leaves the user's state alone; it stops it when done.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from app.runtime import deps
from app.runtime.services import KafkaBroker, settings_environment
from app.settings import REPO_ROOT, Settings, load_settings

log = logging.getLogger(__name__)

REPORT = REPO_ROOT / "docs" / "benchmarks.md"


@dataclass(frozen=True)
class ProducerRun:
    records: int
    seconds: float
    peak_rss_mib: float
    mean_value_bytes: float

    @property
    def records_per_second(self) -> float:
        return self.records / self.seconds


@dataclass(frozen=True)
class CeilingRun:
    records: int
    records_per_second: float


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def flat_data_folder(source: Path, target: Path) -> int:
    """Every click file (also in `clicks/`) and the catalogue of `source`, hard-linked (copied across
    file systems: the producer refuses symbolic links out of its folder); returns the count."""
    target.mkdir(parents=True, exist_ok=True)
    files = sorted({*source.glob("clicks_hour_*.csv"), *source.glob("clicks/clicks_hour_*.csv")})
    files += sorted(source.glob("articles_metadata.csv"))
    if not files:
        raise SystemExit(f"no clicks_hour_*.csv in {source} (BENCH_DATA_DIR)")
    for path in files:
        try:
            os.link(path.resolve(), target / path.name)
        except OSError:
            shutil.copy2(path, target / path.name)
    return len(files)


def fresh_topics(settings: Settings) -> Settings:
    tag = uuid.uuid4().hex[:8]
    return replace(
        settings,
        kafka_topic=f"bench-clicks-{tag}",
        kafka_metadata_topic=f"bench-articles-{tag}",
        kafka_ledger_topic=f"bench-ledger-{tag}",
        kafka_rejects_topic=f"bench-rejects-{tag}",
        producer_transactional_id=f"bench-producer-{tag}",
    )


def run_producer(settings: Settings) -> ProducerRun:
    """`python -m app.producer publish` as a user runs it, timed, with its peak RSS (GNU time)."""
    from app.kafka_io import end_offsets

    environment = {**os.environ, **settings_environment(settings)}
    timed = ["/usr/bin/time", "-f", "peak_rss_kib=%M"] if Path("/usr/bin/time").exists() else []
    command = [*timed, sys.executable, "-m", "app.producer", "publish", "--json"]
    started = time.perf_counter()
    finished = subprocess.run(command, cwd=REPO_ROOT, env=environment, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if finished.returncode != 0:
        raise SystemExit(f"the producer failed ({finished.returncode}):\n{finished.stderr[-3000:]}")
    report = json.loads(finished.stdout)
    match = re.search(r"peak_rss_kib=(\d+)", finished.stderr)
    topics = [settings.kafka_topic, settings.kafka_metadata_topic]
    ends = end_offsets(settings, topics)
    records = int(report["rows"])
    return ProducerRun(
        records=records,
        seconds=seconds,
        peak_rss_mib=int(match.group(1)) / 1024 if match else float("nan"),
        mean_value_bytes=mean_value_size(settings, topics, sum(sum(p.values()) for p in ends.values())),
    )


def mean_value_size(settings: Settings, topics: list[str], limit: int, sample: int = 20_000) -> float:
    """The mean size of the message values in `topics` (a sample from the start)."""
    from confluent_kafka import Consumer

    from app.kafka_io import client_config

    consumer = Consumer(
        {
            **client_config(settings),
            "group.id": f"bench-{uuid.uuid4().hex[:6]}",
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
        }
    )
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


def run_ceiling(settings: Settings, records: int, record_size: int) -> CeilingRun:
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
    return CeilingRun(int(match.group(1)), float(match.group(2)))


def machine() -> dict[str, str]:
    import confluent_kafka
    import pyspark

    memory_kib = next(
        int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")
    )
    java = subprocess.run([deps.java_executable(), "-version"], capture_output=True, text=True, check=False).stderr
    kafka_jar = next(iter(sorted(deps.KAFKA_JARS_DIR.glob("kafka_*.jar"))), None)
    return {
        "cores": str(os.cpu_count()),
        "memory": f"{memory_kib / 1024 / 1024:.0f} GiB",
        "cpu": next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if "model name" in line
            ),
            platform.processor(),
        ),
        "java": java.splitlines()[0] if java else "?",
        "python": platform.python_version(),
        "kafka": kafka_jar.stem.split("-", 1)[1] if kafka_jar else "?",
        "librdkafka": confluent_kafka.libversion()[0],
        "spark": pyspark.__version__,
    }


def producer_section(settings: Settings, data_dir: Path, runs: int) -> list[str]:
    ours, ceilings = [], []
    for number in range(1, runs + 1):
        run_settings = fresh_topics(replace(settings, producer_data_root_directory=data_dir))
        result = run_producer(run_settings)
        ours.append(result)
        log.info(
            "run %s: our producer %s records in %.1f s (%.0f records/s, peak %.0f MiB, mean value %.0f B)",
            number, result.records, result.seconds, result.records_per_second, result.peak_rss_mib,
            result.mean_value_bytes,
        )  # fmt: skip
        ceiling = run_ceiling(settings, result.records, round(result.mean_value_bytes))
        ceilings.append(ceiling)
        log.info("run %s: ProducerPerformance %.0f records/s", number, ceiling.records_per_second)
    our_rate = statistics.median(run.records_per_second for run in ours)
    ceiling_rate = statistics.median(run.records_per_second for run in ceilings)
    ratio = our_rate / ceiling_rate
    return [
        "## 1. Producer against Kafka's own ceiling",
        "",
        f"Our producer published {ours[0].records:,} records (every click file and the catalogue) "
        f"of {statistics.median(run.mean_value_bytes for run in ours):.0f} bytes on average, in one "
        "transaction per file, `acks=all`, idempotent, `linger.ms=25`, lz4; `ProducerPerformance` sent as "
        "many records of that size with the same properties, committing a transaction every second, "
        "to a fresh topic of the same layout on the same broker. Each run is the whole command "
        "(`python -m app.producer publish`), its start-up, file reading and parsing included.",
        "",
        "| | records/s (median) | runs |",
        "|---|---:|---|",
        f"| our producer | {our_rate:,.0f} | {rates(run.records_per_second for run in ours)} |",
        f"| ProducerPerformance | {ceiling_rate:,.0f} | {rates(run.records_per_second for run in ceilings)} |",
        "",
        f"**Ratio: {ratio:.2f}** (goal: at least 0.5): "
        + ("met." if ratio >= 0.5 else f"missed, by a factor of {0.5 / ratio:.1f}."),
        "",
        "## 6. Memory",
        "",
        f"Peak resident memory of the producer (GNU time): median "
        f"{statistics.median(run.peak_rss_mib for run in ours):.0f} MiB "
        f"(runs: {rates(run.peak_rss_mib for run in ours)} MiB).",
        "",
    ]


def rates(values: Iterable[float]) -> str:
    return ", ".join(f"{value:,.0f}" for value in values)


def write_report(sections: list[str], facts: dict[str, str], runs: int, data_dir: Path, seconds: float) -> None:
    lines = [
        "# Benchmarks",
        "",
        f"Written by `make bench` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, in {seconds / 60:.1f} minutes; "
        f"every figure is the median of {runs} runs, each beside its ceiling measured in the same run. "
        f"Data: `{data_dir}`.",
        "",
        "| machine | |",
        "|---|---|",
        *(f"| {key} | {value} |" for key, value in facts.items()),
        "",
        *sections,
        "## Not measured yet",
        "",
        "Items 2 to 5 of issue 7 (the original project's per-row sending, the Spark drain against a bare "
        "Kafka-to-Parquet query, a whole Airflow run, streaming latency) and the Spark driver's memory.",
        "",
    ]
    REPORT.write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.bench", description=__doc__)
    parser.add_argument("--runs", type=int, default=3, help="runs per figure (the median is reported)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    base = load_settings()
    data_dir = base.bench_data_dir
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="clickstream-bench-") as scratch:
        state = Path(scratch)
        settings = replace(
            base,
            state_dir=state / "state",
            kafka_servers=f"127.0.0.1:{free_port()}",
            kafka_controller_port=free_port(),
            kafka_broker_heap="1g",
        )
        files = flat_data_folder(data_dir, state / "data")
        log.info("%s files from %s", files, data_dir)
        broker = KafkaBroker(settings)
        broker.start()
        try:
            sections = producer_section(settings, state / "data", args.runs)
        finally:
            broker.stop()
            shutil.rmtree(state / "state", ignore_errors=True)
    write_report(sections, machine(), args.runs, data_dir, time.monotonic() - started)
    log.info("wrote %s", REPORT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
