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

from app.producer.shards import process_count
from app.runtime import deps
from app.settings import REPO_ROOT, Settings, with_own_names
from app.tools.bench.common import listing, median_of, reached, timed

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rate:
    """One timed run: how many records, how fast, and how many value bytes a second."""

    records: int
    seconds: float
    value_bytes: float  # mean size of a message value
    peak_rss_mib: float = float("nan")

    @property
    def records_per_second(self) -> float:
        return self.records / self.seconds

    @property
    def mib_per_second(self) -> float:
        return self.records * self.value_bytes / self.seconds / 2**20


def run_producer(settings: Settings) -> Rate:
    """`python -m app.producer publish` as a user runs it, timed (start-up, reading and parsing
    included), with its peak RSS and the mean size of the values it sent."""
    run = timed(
        [sys.executable, "-m", "app.producer", "publish", "--json"],
        {**os.environ, **settings.environment()},
        REPO_ROOT,
        "our producer",
    )
    records = int(json.loads(run.stdout)["rows"])
    sample = sample_messages(settings, [settings.kafka_topic, settings.kafka_metadata_topic], 20_000)
    return Rate(records, run.seconds, statistics.fmean(len(value) for _, value in sample), run.peak_rss_mib)


def sample_messages(settings: Settings, topics: list[str], count: int) -> list[tuple[bytes, bytes]]:
    """Up to `count` (key, value) pairs from the start of `topics` (committed ones only)."""
    from confluent_kafka import Consumer

    from app.kafka_io import committed_reader_config

    consumer = Consumer(committed_reader_config(settings, f"bench-sample-{uuid.uuid4().hex[:6]}"))
    pairs: list[tuple[bytes, bytes]] = []
    try:
        consumer.subscribe(topics)
        deadline = time.monotonic() + 60
        while len(pairs) < count and time.monotonic() < deadline:
            messages = consumer.consume(1000, timeout=1.0)
            if not messages and pairs:
                break  # the topics' end (their offsets count transaction markers too)
            for message in messages:
                key, value = (message.key(), message.value()) if message.error() is None else (None, None)
                if key is not None and value is not None:
                    pairs.append((key, value))
    finally:
        consumer.close()
    if not pairs:
        raise SystemExit(f"no message in {', '.join(topics)} to take the ceiling's payloads from")
    return pairs[:count]


def write_payload_file(values: list[bytes], path: Path) -> Path:
    """`values` one per line, for ProducerPerformance's --payload-file and the client floor's
    sample (a JSON value has no newline, a key and its value are apart by a tab)."""
    assert not any(b"\n" in value for value in values)
    path.write_bytes(b"\n".join(values) + b"\n")
    return path


def fresh_topics(settings: Settings, *prefixes: str) -> list[str]:
    """A new topic for each prefix, laid out as the producer lays out ours (the broker creates no
    topic on first use)."""
    from app.kafka_io import TopicSpec, ensure_topics

    tag = uuid.uuid4().hex[:8]
    names = [f"{prefix}-{tag}" for prefix in prefixes]
    config = {"min.insync.replicas": str(settings.kafka_min_insync_replicas)}
    ensure_topics(settings, [TopicSpec(name, settings.kafka_topic_partitions, config) for name in names])
    return names


@dataclass(frozen=True)
class FloorRun:
    """The bare client in several processes side by side: `rate` is timed inside them (the slowest
    one's sending), `wall_seconds` from the first start to the last exit (Python's start included)."""

    rate: Rate
    wall_seconds: float
    processes: int


def run_client_floors(
    settings: Settings, records: int, sample_file: Path, value_bytes: float, processes: int
) -> FloorRun:
    """`app.tools.bench.client_floor`, the bare Python client sending `records` of our real messages,
    in `processes` processes started together that share them (as our producer's shards share its
    files) on one fresh topic, each in a transaction of its own."""
    [topic] = fresh_topics(settings, "bench-floor")
    shares = [records // processes + (number < records % processes) for number in range(processes)]
    environment = {**os.environ, **settings.environment()}
    started = time.perf_counter()
    children = [
        subprocess.Popen(
            [sys.executable, "-m", "app.tools.bench.client_floor", topic, str(sample_file), str(share)],
            cwd=REPO_ROOT,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for share in shares
    ]
    outputs = [child.communicate() for child in children]
    wall = time.perf_counter() - started
    seconds = []
    for child, (stdout, stderr), share in zip(children, outputs, shares, strict=True):
        if child.returncode != 0 or stdout.split()[:1] != [str(share)]:
            raise SystemExit(f"the bare Python client failed ({child.returncode}):\n{stdout[-2000:]}{stderr[-3000:]}")
        seconds.append(float(stdout.split()[1]))
    return FloorRun(Rate(records, max(seconds), value_bytes), wall, processes)


def ceiling_properties(settings: Settings) -> list[str]:
    """Our producer's own batching, linger, compression, acks, idempotence and buffer, as Java client
    properties (`app.producer.publisher.producer_config`), so the ceiling is batched as ours is."""
    from app.producer.publisher import producer_config

    ours = producer_config(settings)
    return [
        f"bootstrap.servers={settings.kafka_servers}",
        f"acks={ours['acks']}",
        f"enable.idempotence={str(ours['enable.idempotence']).lower()}",
        f"linger.ms={ours['linger.ms']}",
        f"batch.size={ours['batch.size']}",
        f"compression.type={ours['compression.type']}",
        f"buffer.memory={ours['queue.buffering.max.kbytes'] * 1024}",
        f"transaction.timeout.ms={ours['transaction.timeout.ms']}",
    ]


CEILING_WARMUP_FRACTION = 0.1  # of the records, left out of the ceiling's steady-state rate


def run_ceiling(settings: Settings, records: int, payload_file: Path, value_bytes: float) -> Rate:
    """Kafka's ProducerPerformance sending `records` of our real values (picked at random from
    `payload_file`; the tool sends no keys or headers) with our producer's properties, committing a
    transaction every second, to a fresh topic of our topics' layout. Its steady-state rate (after a
    warm-up of a tenth of the records) is the ceiling: the higher of its two figures."""
    [topic] = fresh_topics(settings, "bench-ceiling")
    command = [
        deps.java_executable(),
        "-Xmx1g",
        "-cp",
        f"{deps.KAFKA_JARS_DIR}/*",
        "org.apache.kafka.tools.ProducerPerformance",
        *("--topic", topic, "--num-records", str(records), "--payload-file", str(payload_file)),
        *("--throughput", "-1", "--transactional-id", f"bench-ceiling-{uuid.uuid4().hex[:6]}"),
        *("--transaction-duration-ms", "1000"),
        *("--warmup-records", str(int(records * CEILING_WARMUP_FRACTION))),
        "--command-property",
        *ceiling_properties(settings),
    ]
    finished = subprocess.run(command, capture_output=True, text=True, check=False)
    if finished.returncode != 0:
        raise SystemExit(f"ProducerPerformance failed:\n{finished.stdout[-2000:]}{finished.stderr[-2000:]}")
    total, steady = ceiling_summary(finished.stdout)
    if total[0] != records:
        raise SystemExit(f"ProducerPerformance sent {total[0]} records, not {records}:\n{finished.stdout[-2000:]}")
    rate = max(total[1], steady[1]) if steady else total[1]
    return Rate(records, records / rate, value_bytes)


def ceiling_summary(output: str) -> tuple[tuple[int, float], tuple[int, float] | None]:
    """(records, records/s) of ProducerPerformance's final summary (the line with the percentiles, not
    an interval report), and of its steady-state summary if it printed one."""
    summary = r"^(\d+)%s records sent, ([\d.]+) records/sec .* 50th"
    total = re.findall(summary % "", output, re.MULTILINE)
    steady = re.findall(summary % " steady state", output, re.MULTILINE)
    if not total:
        raise SystemExit(f"ProducerPerformance printed no summary:\n{output[-2000:]}")
    return (int(total[-1][0]), float(total[-1][1])), ((int(steady[-1][0]), float(steady[-1][1])) if steady else None)


def run_original(settings: Settings, data_dir: Path) -> Rate:
    """The original project's way (`app.tools.bench.original_producer`) over the same files, timed."""
    files = sorted(data_dir.glob("clicks_hour_*.csv")) + sorted(data_dir.glob("articles_metadata.csv"))
    clicks, articles = fresh_topics(settings, "bench-original-clicks", "bench-original-articles")
    run = timed(
        [
            sys.executable,
            "-m",
            "app.tools.bench.original_producer",
            settings.kafka_servers,
            clicks,
            articles,
            *map(str, files),
        ],
        dict(os.environ),
        REPO_ROOT,
        "the original project's producer",
    )
    records = int(run.stdout.split()[-1])
    return Rate(records, run.seconds, float("nan"), run.peak_rss_mib)


@dataclass(frozen=True)
class ProducerComparison:
    """Runs interleaved (ours, the ceiling, the bare client; again), each list in run order; the
    original way once, in the first round."""

    ours: list[Rate]
    ceilings: list[Rate]
    floors: list[Rate]  # the bare Python client
    originals: list[Rate]


def producer_runs(settings: Settings, data_dir: Path, scratch: Path, runs: int) -> ProducerComparison:
    """A warm-up of ours and of the ceiling (not counted: the broker's JIT, the page cache), then
    `runs` rounds of ours and the ceiling, each on fresh topics, the first round with the original
    way too (one run: at 9,000 records/s it takes two minutes, and it is a figure kept for history).
    The ceiling sends values taken from what ours published, as many records as ours sent."""
    scratch.mkdir(parents=True, exist_ok=True)
    comparison = ProducerComparison([], [], [], [])
    payload_file: Path | None = None
    sample_file = scratch / "messages.tsv"
    for number in range(0, runs + 1):  # round 0 warms up
        own = with_own_names(settings, scratch, "bench")
        ours = run_producer(own)
        if payload_file is None:
            sample = sample_messages(own, [own.kafka_topic, own.kafka_metadata_topic], 20_000)
            payload_file = write_payload_file([value for _, value in sample], scratch / "payloads.txt")
            write_payload_file([key + b"\t" + value for key, value in sample], sample_file)
        ceiling = run_ceiling(settings, ours.records, payload_file, ours.value_bytes)
        floor = run_client_floors(settings, ours.records, sample_file, ours.value_bytes, 1).rate
        if number == 0:
            log.info("warm-up: ours %.0f records/s, ceiling %.0f records/s", ours.records_per_second,
                     ceiling.records_per_second)  # fmt: skip
            continue
        if number == 1:
            original = run_original(settings, data_dir)
            if original.records != ours.records:
                raise SystemExit(f"the original way sent {original.records} records, ours {ours.records}")
            comparison.originals.append(original)
            log.info("the original way: %.0f records/s", original.records_per_second)
        comparison.ours.append(ours)
        comparison.ceilings.append(ceiling)
        comparison.floors.append(floor)
        log.info(
            "run %s: ours %.0f records/s (%.1f MiB/s, peak %.0f MiB), ProducerPerformance %.0f records/s "
            "(%.1f MiB/s), the bare Python client %.0f records/s",
            number, ours.records_per_second, ours.mib_per_second, ours.peak_rss_mib, ceiling.records_per_second,
            ceiling.mib_per_second, floor.records_per_second,
        )  # fmt: skip
    return comparison


def _row(label: str, rates: list[Rate], with_bytes: bool = True) -> str:
    records = f"{median_of(r.records_per_second for r in rates):,.0f}"
    runs = listing(r.records_per_second for r in rates)
    if not with_bytes:
        return f"| {label} | {records} | | {runs} |"
    return f"| {label} | {records} | {median_of(r.mib_per_second for r in rates):,.1f} | {runs} |"


def producer_section(comparison: ProducerComparison, settings: Settings) -> tuple[list[str], list[str], float]:
    """Items 1 and 2 of the report; also the ceiling's median seconds for all the records, which the
    end-to-end item adds up."""
    ours, ceilings, originals = comparison.ours, comparison.ceilings, comparison.originals
    ratios = [
        mine.records_per_second / ceiling.records_per_second for mine, ceiling in zip(ours, ceilings, strict=True)
    ]
    ratio = median_of(ratios)
    floor_rate = median_of(r.records_per_second for r in comparison.floors)
    floor_ratio = floor_rate / median_of(r.records_per_second for r in ceilings)
    ours_of_floor = median_of(r.records_per_second for r in ours) / floor_rate
    speedup = median_of(r.records_per_second for r in ours) / median_of(r.records_per_second for r in originals)
    header = ["| | records/s (median) | MiB/s of values (median) | runs (records/s) |", "|---|---:|---:|---|"]
    lines = [
        "## 1. Producer against Kafka's own ceiling",
        "",
        f"Our producer published {ours[0].records:,} records (every click file and the catalogue), values "
        f"of {median_of(r.value_bytes for r in ours):.0f} bytes on average with their keys and headers, in "
        f"one transaction per file, in {process_count(settings)} processes side by side (`PRODUCER_PROCESSES`: "
        "shards of about equal bytes); each run is the whole command (`python -m app.producer publish`), its "
        "start-up, file reading and parsing included. Beside each run, `ProducerPerformance` sent as many "
        "records (checked), each a value taken at random from 20,000 of ours (`--payload-file`; the tool "
        "sends no keys or headers), with our producer's properties ("
        + ", ".join(f"`{p}`" for p in ceiling_properties(settings)[1:])
        + "), committing a transaction every second, to a fresh topic of the same layout on the same broker; "
        f"its figure is its steady state after {CEILING_WARMUP_FRACTION:.0%} of the records as warm-up. "
        "Before the counted runs, one run of each warmed the broker up; then the runs were interleaved "
        "(ours, the ceiling, the bare client; again).",
        "",
        *header,
        _row("our producer", ours),
        _row("ProducerPerformance", ceilings),
        _row("the bare Python client (`app/tools/bench/client_floor.py`)", comparison.floors),
        "",
        f"Ratio per run: {listing(ratios, 2)}. **Ratio: {ratio:.2f}** (median; goal: at least 0.9): "
        + reached(ratio, 0.9),
        "",
        "What bounds it: the bare Python client, the same messages (keys, values and our four headers) "
        "from a loop of `produce()` calls with nothing else to do, in one process, reaches "
        f"**{floor_ratio:.2f} of ProducerPerformance**; ours reaches {ours_of_floor:.2f} of that bare "
        "client (our file reading, parsing, encoding, ledger and one transaction per file, which on "
        "these cores compete with the broker; `docs/design/producer.md` measures more processes). "
        "ProducerPerformance sends no keys (so its sticky partitioner fills one partition's batch at a "
        "time) and no headers, which the broker also validates record by record.",
        "",
        "## 2. Producer against the original project's way",
        "",
        "The same files sent the way the original project sent them: each file read with pandas, one "
        "JSON message per row from `iterrows()`, a `send()` per row with kafka-python "
        f"{_kafka_python_version()}'s `KafkaProducer` at its defaults (no batching or compression "
        "tuning, no idempotence, no transactions), one `flush()` at the end "
        "(`app/tools/bench/original_producer.py`), to fresh topics on the same broker; it sent as many records "
        "as ours (checked). One run, after ours in the first round (it takes about two minutes; the figure "
        "is kept for history), against the median of ours.",
        "",
        *header,
        _row("our producer", ours),
        _row("the original way", originals, with_bytes=False),
        "",
        f"**Ours is {speedup:.1f} times faster** (goal: at least 25): " + reached(speedup, 25),
        "",
    ]
    memory = [
        f"- our producer (GNU time: its largest process): median {median_of(r.peak_rss_mib for r in ours):.0f} MiB "
        f"(runs: {listing(r.peak_rss_mib for r in ours)} MiB)",
        f"- the original way: median {median_of(r.peak_rss_mib for r in originals):.0f} MiB "
        f"(runs: {listing(r.peak_rss_mib for r in originals)} MiB)",
    ]
    return lines, memory, median_of(r.seconds for r in ceilings)


def _kafka_python_version() -> str:
    try:
        import kafka

        return str(kafka.__version__)
    except ImportError:
        return "?"
