"""`make bench`, item 5: streaming latency. The long-running job (processing-time trigger) runs while
the producer replays click files at a fixed rate (`PRODUCER_ITEM_WAIT_TIME`); the delay of each
click from its publication (its Kafka timestamp) to its appearance in its hour's aggregate
(`article_hourly`, read as any reader reads it: metastore locations, Parquet files) is measured.

The replays ask the producer for a little more than the goal's rate (`PACING_HEADROOM`: its pause
after each click does not count the time sending it takes), and the goal is checked against the
rate reached. A first replay warms the stream up (the JVM compiles the micro-batch's code paths
during its first batches) and is reported apart, not counted.

The aggregate is polled twice a second. A micro-batch takes a prefix of every partition, so the
clicks visible at a moment are, up to one commit of the producer (every second in a paced run),
the earliest published ones: the i-th click in publication order appeared at the first poll that
showed at least i clicks.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from app.airflow.tasks import spark_job_environment
from app.settings import REPO_ROOT, Settings
from app.spark_session import SPARK_JOBS_DIR, spark_submit_command

log = logging.getLogger(__name__)

REPLAY_SECONDS = 20  # each replay lasts about this long at the asked rate
WARM_UP_SECONDS = 10  # the uncounted first replay
PACING_HEADROOM = 1.06  # asked rate / goal: the producer's pacing reaches about 96 % of what it is asked


@dataclass(frozen=True)
class LatencyRun:
    clicks: int
    rate: float  # clicks/s the replay reached
    delays: list[float] = field(repr=False)  # of every click of the replay, in publication order

    @property
    def median_seconds(self) -> float:
        return statistics.median(self.delays)

    @property
    def p95_seconds(self) -> float:
        return percentile(self.delays, 0.95)


def aggregated_clicks(settings: Settings, sums: dict[str, int]) -> int:
    """Clicks in `article_hourly` now (each partition version is read once: `sums` keeps them)."""
    from app.parquet_folders import read_columns
    from app.pipeline_view import HiveCatalog

    total = 0
    for location in HiveCatalog(settings).locations().get("article_hourly", {}).values():
        if location not in sums:
            sums[location] = sum(read_columns(location, ["clicks"])["clicks"])
        total += sums[location]
    return total


class Watcher:
    """(time, clicks in the aggregate) twice a second, in a thread."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.seen: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._sums: dict[str, int] = {}

    def __enter__(self) -> Watcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def latest(self) -> int:
        return self.seen[-1][1] if self.seen else 0

    def _watch(self) -> None:
        while not self._stop.wait(0.5):
            try:
                self.seen.append((time.time(), aggregated_clicks(self.settings, self._sums)))
            except (ConnectionError, OSError) as error:  # a table not there yet, a version being removed
                log.debug("watch: %s", error)


def publication_times(settings: Settings) -> list[float]:
    """The Kafka timestamps (s) of every committed click, earliest first."""
    from confluent_kafka import Consumer

    from app.kafka_io import committed_reader_config

    consumer = Consumer(committed_reader_config(settings, "bench-latency"))
    times: list[float] = []
    try:
        consumer.subscribe([settings.kafka_topic])
        idle_since = time.monotonic()
        while time.monotonic() - idle_since < 5:
            messages = consumer.consume(1000, timeout=1.0)
            for message in messages:
                if message.error() is None:
                    times.append(message.timestamp()[1] / 1000)
            if messages:
                idle_since = time.monotonic()
    finally:
        consumer.close()
    return sorted(times)


def delays(published: list[float], seen: list[tuple[float, int]]) -> list[float]:
    """Each click's delay: the first poll showing at least its rank in publication order, minus its
    publication time. Clicks never seen are left out (the caller checks that all were seen)."""
    found, poll = [], 0
    for rank, at in enumerate(published, start=1):
        while poll < len(seen) and seen[poll][1] < rank:
            poll += 1
        if poll == len(seen):
            break
        found.append(seen[poll][0] - at)
    return found


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def latency_runs(
    settings: Settings, data_dir: Path, scratch: Path, runs: int, interval: str, clicks_per_second: float
) -> tuple[LatencyRun, list[LatencyRun]]:
    """One streaming job, then a warm-up replay and `runs` counted replays of click files not
    published yet, each asked for `clicks_per_second` times `PACING_HEADROOM`."""
    folder = scratch / "latency-data"
    folder.mkdir(parents=True)
    settings = replace(settings, producer_data_root_directory=folder, producer_file_stable_seconds=0.0)
    environment = {**os.environ, **settings.environment()}
    publish = [sys.executable, "-m", "app.producer", "publish", "--json"]
    # an empty folder: the topics are made before the stream subscribes (a click of an article not
    # published yet counts in article_hourly all the same, under category -1)
    subprocess.run(publish, cwd=REPO_ROOT, env=environment, check=True, capture_output=True)
    job_log = scratch / "latency-stream.log"
    command = spark_submit_command(
        settings, str(SPARK_JOBS_DIR / "streaming_job.py"), ["--trigger", "processing-time", "--interval", interval]
    )
    command[1:1] = ["--conf", "spark.ui.enabled=false"]
    click_files = iter(sorted(data_dir.glob("clicks_hour_*.csv")))
    results = []
    with open(job_log, "wb") as output:
        job = subprocess.Popen(
            command,
            env={**os.environ, **spark_job_environment(settings)},
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_for(lambda: re.search(r"query \S+ started", job_log.read_text(errors="replace")), job, job_log, 300)
        with Watcher(settings) as watcher:
            for number in range(runs + 1):  # replay 0 warms up
                before = watcher.latest()
                files = []
                rows = 0
                seconds = WARM_UP_SECONDS if number == 0 else REPLAY_SECONDS
                while rows < seconds * clicks_per_second:  # clicks of files not published yet
                    path = next(click_files)
                    os.link(path, folder / path.name)
                    files.append(path.name)
                    rows += sum(1 for _ in path.open()) - 1
                wait = 1.0 / (clicks_per_second * PACING_HEADROOM)  # the producer's pause after each click
                started = time.time()
                subprocess.run(
                    publish,
                    cwd=REPO_ROOT,
                    env={**environment, "PRODUCER_ITEM_WAIT_TIME": f"{wait:.6f}"},
                    check=True,
                    capture_output=True,
                )
                replayed = time.time() - started
                target = before + rows
                _wait_for(lambda: watcher.latest() >= target, job, job_log, 180)  # noqa: B023 - called here
                published = publication_times(settings)[-rows:]
                seen = [(at, count - before) for at, count in watcher.seen if at >= started - 1]
                found = delays(published, seen)
                if len(found) != rows:
                    raise SystemExit(f"replay {number}: {len(found)} of {rows} clicks seen in the aggregate")
                results.append(LatencyRun(rows, rows / replayed, found))
                log.info(
                    "replay %s (%s): %s clicks at %.0f/s, median %.1f s, 95th percentile %.1f s",
                    number, ", ".join(files), rows, results[-1].rate, results[-1].median_seconds,
                    results[-1].p95_seconds,
                )  # fmt: skip
    finally:
        os.killpg(job.pid, signal.SIGTERM)
        try:
            job.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(job.pid, signal.SIGKILL)
            job.wait()
        shutil.rmtree(folder, ignore_errors=True)
    return results[0], results[1:]


def _wait_for(condition: object, job: subprocess.Popen[bytes], job_log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if job.poll() is not None:
            raise SystemExit(f"the streaming job exited ({job.returncode}):\n{job_log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            raise SystemExit(f"the streaming job did not get there within {timeout:.0f} s; see {job_log}")
        time.sleep(0.5)


def latency_section(warm_up: LatencyRun, results: list[LatencyRun], interval: str, goal_rate: float) -> list[str]:
    interval_seconds = float(interval.split()[0])
    every = [delay for run in results for delay in run.delays]
    median, p95, p99 = statistics.median(every), percentile(every, 0.95), percentile(every, 0.99)
    median_goal, p95_goal = interval_seconds + 2, 2 * interval_seconds
    rate = statistics.median(run.rate for run in results)
    return [
        "## 5. Streaming latency",
        "",
        f"The streaming job ran with a processing-time trigger of {interval}; the producer replayed "
        f"{len(results)} times about {REPLAY_SECONDS} s of clicks of click files not published before, "
        f"asked for {goal_rate * PACING_HEADROOM:,.0f} clicks/s (`PRODUCER_ITEM_WAIT_TIME`; it reached "
        f"{rate:,.0f}), a transaction committed every second. Delay: from a click's Kafka timestamp to the "
        "first poll (twice a second) of `article_hourly` that counted it. The percentiles are over every "
        f"click of every counted replay. A first replay of {warm_up.clicks:,} clicks warmed the stream up "
        f"and is not counted: median {warm_up.median_seconds:.1f} s, 95th percentile "
        f"{warm_up.p95_seconds:.1f} s at {warm_up.rate:,.0f} clicks/s.",
        "",
        "| replay | clicks | clicks/s | median delay (s) | 95th percentile (s) |",
        "|---|---:|---:|---:|---:|",
        *(
            f"| {number} | {run.clicks:,} | {run.rate:,.0f} | {run.median_seconds:.1f} | {run.p95_seconds:.1f} |"
            for number, run in enumerate(results, start=1)
        ),
        f"| all | {len(every):,} | {rate:,.0f} | {median:.1f} | {p95:.1f} |",
        "",
        f"**Median {median:.1f} s, 95th percentile {p95:.1f} s, 99th {p99:.1f} s, max {max(every):.1f} s**, "
        f"against a trigger interval of {interval_seconds:.0f} s. Goals: median under {median_goal:.0f} s "
        + ("(met)" if median < median_goal else "(missed)")
        + f", 95th percentile under {p95_goal:.0f} s "
        + ("(met)" if p95 < p95_goal else "(missed)")
        + f", at {goal_rate:,.0f} clicks/s or more "
        + ("(held)." if rate >= goal_rate else f"(missed: the replays held {rate:,.0f})."),
        "",
    ]
