"""`make bench`, item 3 and the Spark driver's part of 6: the streaming job draining the published
topics (available-now) into the raw Parquet tables and every Hive aggregate, against a bare
Kafka-to-Parquet query (`spark_jobs/bare_drain.py`) over the same topics, both through
`spark-submit` as the scheduler runs them, with the driver's peak resident memory."""

from __future__ import annotations

import io
import logging
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from app.airflow.tasks import spark_job_environment
from app.settings import REPO_ROOT, Settings
from app.spark_session import SPARK_JOBS_DIR, spark_submit_command
from app.tools.bench.common import PeakMemory, listing, median_of, reached, timed

log = logging.getLogger(__name__)

PROGRESS = re.compile(r"batch (\d+): (\d+) rows, [\d.]+ rows/s, (\d+) ms")
BARE_APP_NAME = "clickstream-bench-bare-drain"  # spark_jobs/bare_drain.py's
TABLE_WRITE = re.compile(r"spark_jobs\.tables: (\w+): (?:replaced|appended) .* in ([\d.]+) s")
FILES_WRITTEN = re.compile(r"spark_jobs\.tables: \w+: (?:replaced|appended \d+ row\(s\) to) (\d+) partition\(s\)")
FINAL_RECOMPUTE = re.compile(r"recomputed \d+ hour\(s\) landed by the drain in ([\d.]+) s")


@dataclass(frozen=True)
class DrainRun:
    rows: int
    batches: int
    query_seconds: float  # the micro-batches' durations, and the drain's recomputation after them
    wall_seconds: float  # spark-submit from start to exit, JVM start-up included
    driver_java_mib: float
    driver_python_mib: float
    table_seconds: dict[str, float] | None = None  # each table's writes (computing its rows included)
    files: int | None = None  # Parquet files written (one per partition, or per unpartitioned table)
    profile: SparkProfile | None = None

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.query_seconds


def progress(log_text: str) -> tuple[int, int, float]:
    """(rows, batches, seconds) from the job's progress lines (`ProgressLogger`): the seconds of its
    micro-batches and of the recomputation an available-now drain runs after them."""
    batches = {int(m.group(1)): (int(m.group(2)), int(m.group(3))) for m in PROGRESS.finditer(log_text)}
    final = sum(float(m.group(1)) for m in FINAL_RECOMPUTE.finditer(log_text))
    return sum(r for r, _ in batches.values()), len(batches), sum(ms for _, ms in batches.values()) / 1000 + final


def table_seconds(log_text: str) -> dict[str, float]:
    """Seconds spent writing each table (computing the rows written included), from the job's log."""
    seconds: dict[str, float] = {}
    for found in TABLE_WRITE.finditer(log_text):
        seconds[found.group(1)] = seconds.get(found.group(1), 0.0) + float(found.group(2))
    return seconds


def files_written(log_text: str) -> int:
    """Parquet files the job wrote, from its log: one per partition it replaced, one per table."""
    return sum(int(found.group(1)) for found in FILES_WRITTEN.finditer(log_text))


def run_spark_job(settings: Settings, script: str, arguments: list[str]) -> DrainRun:
    command = spark_submit_command(settings, str(SPARK_JOBS_DIR / script), arguments)
    command[1:1] = ["--conf", "spark.ui.enabled=false"]
    with PeakMemory(lambda argv: any(arg.endswith(script) for arg in argv)) as memory:
        run = timed(command, {**os.environ, **spark_job_environment(settings)}, REPO_ROOT, script)
    rows, batches, seconds = progress(run.stdout + run.stderr)
    if not rows:
        raise SystemExit(f"{script} drained no rows:\n{run.stderr[-3000:]}")
    return DrainRun(rows, batches, seconds, run.seconds, memory.peak_mib("java"), memory.peak_mib("python"))


def bare_run(settings: Settings, folder: Path) -> DrainRun:
    """The bare query over the topics `settings` name (what a run of ours published and drained)."""
    run = run_spark_job(settings, "bare_drain.py", [str(folder / "out"), str(folder / "checkpoint")])
    run = replace(
        run,
        profile=event_log_profile(settings.state_dir / "spark" / "events", BARE_APP_NAME),
        files=len(list((folder / "out").glob("*.parquet"))),
    )
    log.info("bare query: %s", run)
    return run


def spark_section(ours: list[DrainRun], bare: list[DrainRun], cores: int) -> tuple[list[str], list[str]]:
    for number, (our_run, bare_run_) in enumerate(zip(ours, bare, strict=True), start=1):
        if our_run.rows != bare_run_.rows:
            raise SystemExit(
                f"run {number}: the streaming job read {our_run.rows:,} records and the bare query {bare_run_.rows:,}: "
                "the two must drain the same topics"
            )
    our_rate = median_of(run.rows_per_second for run in ours)
    bare_rate = median_of(run.rows_per_second for run in bare)
    ratio = our_rate / bare_rate
    lines = [
        "## 3. Spark drain against a bare query",
        "",
        f"The streaming job (`streaming_job.py --trigger available-now`, as `clickstream_hourly`'s "
        f"`drain_topics` runs it in item 4) drained the {ours[0].rows:,} records the run had published "
        f"(both topics, in {ours[0].batches} micro-batch(es) of at most `SPARK_MAX_OFFSETS_PER_TRIGGER`) into "
        "the raw Parquet tables and every Hive aggregate; after each run the bare query "
        "(`spark_jobs/bare_drain.py`: the same Kafka source, the value cast to text, Spark's own Parquet "
        "sink, no parsing, join, aggregate or metastore) drained the same topics while that run's Airflow "
        "still ran (the same services around both; both read the same number of records, asserted). Rates are "
        f"rows over the micro-batches' summed durations; local Spark on {cores} cores.",
        "",
        "| | rows/s (median) | per core | runs | wall time with start-up (s) |",
        "|---|---:|---:|---|---|",
        f"| streaming job | {our_rate:,.0f} | {our_rate / cores:,.0f} | "
        f"{listing(run.rows_per_second for run in ours)} | {listing((run.wall_seconds for run in ours), 1)} "
        "(the task) |",
        f"| bare query | {bare_rate:,.0f} | {bare_rate / cores:,.0f} | "
        f"{listing(run.rows_per_second for run in bare)} | {listing((run.wall_seconds for run in bare), 1)} |",
        "",
        f"**Ratio: {ratio:.2f}** (goal: at least 0.5): " + reached(ratio, 0.5),
        "",
        *profile_lines(ours, bare),
    ]
    memory = [
        f"- Spark driver of the streaming job, JVM (local mode: the executors' threads live in it): median "
        f"{median_of(run.driver_java_mib for run in ours):.0f} MiB "
        f"(runs: {listing(run.driver_java_mib for run in ours)}"
        f" MiB); its Python process: median {median_of(run.driver_python_mib for run in ours):.0f} MiB",
        f"- Spark driver of the bare query, JVM: median {median_of(run.driver_java_mib for run in bare):.0f} MiB",
    ]
    return lines, memory


@dataclass(frozen=True)
class SparkProfile:
    """Where a Spark application's time went, from its event log."""

    jobs: int
    in_jobs_seconds: float  # wall time while at least one Spark job ran
    span_seconds: float  # first job's start to last job's end
    slowest: list[tuple[str, float]]  # SQL executions by total job time, described

    @property
    def outside_jobs_seconds(self) -> float:
        """Driver time between jobs: metastore calls, planning, Python."""
        return self.span_seconds - self.in_jobs_seconds


def event_log_profile(events_dir: Path, app_name: str) -> SparkProfile | None:
    """The profile of the last application named `app_name` in a Spark event log folder."""
    import json

    import zstandard

    logs = []
    for folder in sorted(events_dir.glob("eventlog_v2_*")):
        lines: list[dict[str, Any]] = []
        for part in sorted(folder.glob("events_*")):
            raw = part.read_bytes()
            if part.suffix == ".zstd":  # Spark writes many frames: read across them
                raw = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(raw), read_across_frames=True).read()
            text = raw
            lines += [json.loads(line) for line in text.decode(errors="replace").splitlines() if line.strip()]
        if any(e.get("Event") == "SparkListenerApplicationStart" and e.get("App Name") == app_name for e in lines):
            logs.append(lines)
    if not logs:
        return None
    jobs: dict[int, list[float]] = {}
    execution_of_job: dict[int, str] = {}
    descriptions: dict[str, str] = {}
    for event in logs[-1]:
        kind = event.get("Event")
        if kind == "SparkListenerJobStart":
            job = int(event["Job ID"])
            jobs[job] = [float(event["Submission Time"]) / 1000, float(event["Submission Time"]) / 1000]
            properties = event.get("Properties") or {}
            execution_of_job[job] = str(properties.get("spark.sql.execution.id", ""))
        elif kind == "SparkListenerJobEnd" and int(event["Job ID"]) in jobs:
            jobs[int(event["Job ID"])][1] = float(event["Completion Time"]) / 1000
        elif str(kind).endswith("SparkListenerSQLExecutionStart"):
            descriptions[str(event["executionId"])] = str(event.get("description", ""))
    if not jobs:
        return None
    intervals = sorted(jobs.values())
    busy, current_start, current_end = 0.0, intervals[0][0], intervals[0][1]
    for start, end in intervals[1:]:
        if start > current_end:
            busy += current_end - current_start
            current_start, current_end = start, end
        else:
            current_end = max(current_end, end)
    busy += current_end - current_start
    per_statement: dict[str, float] = {}
    for job, (start, end) in jobs.items():
        described = _statement(descriptions.get(execution_of_job.get(job, ""), ""))
        per_statement[described] = per_statement.get(described, 0.0) + (end - start)
    slowest = sorted(per_statement.items(), key=lambda item: -item[1])[:6]
    return SparkProfile(len(jobs), busy, intervals[-1][1] - intervals[0][0] if intervals else 0.0, slowest)


def _statement(description: str) -> str:
    """A SQL execution's description, short: its first line without the query id."""
    first = description.strip().splitlines()[0] if description.strip() else "(no SQL execution)"
    return first[:80]


def profile_lines(ours: list[DrainRun], bare: list[DrainRun]) -> list[str]:
    """Where the streaming job's time went in the run with the median rate, beside the bare query's."""
    run = sorted(ours, key=lambda r: r.rows_per_second)[len(ours) // 2]
    bare_run = sorted(bare, key=lambda r: r.rows_per_second)[len(bare) // 2]
    lines = ["Profile of the streaming job in its median run:", ""]
    if run.table_seconds:
        written = sum(run.table_seconds.values())
        by_time = sorted(run.table_seconds.items(), key=lambda item: -item[1])
        lines += [
            "| writing (each table's rows computed and written, metastore updated) | seconds |",
            "|---|---:|",
            *(f"| {table} | {seconds:,.1f} |" for table, seconds in by_time),
            f"| the rest: reading Kafka, parsing, counting, finding hours | {run.query_seconds - written:,.1f} |",
            "",
        ]
    if run.profile is not None and bare_run.profile is not None:
        lines += [
            f"What bounds it: the streaming job spent {run.profile.in_jobs_seconds:,.0f} s in "
            f"{run.profile.jobs} Spark jobs against the bare query's {bare_run.profile.in_jobs_seconds:,.0f} s in "
            f"{bare_run.profile.jobs}, and {run.profile.outside_jobs_seconds:,.0f} s on the driver between jobs. "
            "Beyond what the bare query does, it parses every record's JSON (and sets aside those that do "
            "not parse), appends the raw rows to their hourly partitions (one file per partition and micro-batch, "
            "renamed into place, new partitions registered in one metastore call), upserts the articles into "
            "the buckets of `articles`, and recomputes every hour it landed into four aggregates with exact "
            "distinct counts, each written as new versions of its hourly partitions swapped in through the "
            "metastore"
            + (
                f": {run.files:,} partition writes, where the bare query wrote {bare_run.files:,} files"
                if run.files is not None and bare_run.files is not None
                else ""
            )
            + ". The table above shows which of it costs most.",
            "",
        ]
    for name, profile in (("streaming job", run.profile), ("bare query", bare_run.profile)):
        if profile is not None:
            lines.append(
                f"- {name} (Spark event log): {profile.jobs} Spark jobs; {profile.in_jobs_seconds:,.1f} s with a job "
                f"running, {profile.outside_jobs_seconds:,.1f} s between jobs (driver: metastore calls, planning, "
                "Python)"
            )
    return [*lines, ""]
