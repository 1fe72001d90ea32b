"""`make bench-scale`: how each cost grows with the tables, at 1x, 3x and 10x the data set.

For each size, a pipeline of its own (fresh topics, database, lake and checkpoint) on the same
services: the click files of `BENCH_DATA_DIR` replicated that many times
(`app/tools/bench/replicate.py`), published by our producer, beside the producer's fair ceiling
(the bare Python client, `app/tools/bench/client_floor.py`, sending as many of our real messages
with our headers and properties from as many processes, whole commands timed against whole
commands; the goal is 0.8 or more of its speed) and a run of ours with nothing new to publish (its
fixed cost); drained by the streaming job (available-now); then, with all of it in the tables:
- the fair ceiling of the drain (`spark_jobs/fair_drain.py`): one plain batch job that reads the
  same topics and writes the same tables with the same transforms, without the exactly-once and
  incremental machinery; the drain's goal is 0.8 or more of its speed;
- the small update: one new file of 100 clicks (the last of the newest file, an hour later) and one
  changed article, published and drained: the micro-batch and the whole job;
- recomputing one old hour (the first file's hour, whose sessions reach later hours), with the raw
  partitions it read besides its own (bounded by `CLICKSTREAM_MAX_SESSION_SECONDS`);
- `check_tables` of every hour by hand (it reconciles every hour, as the hourly runs would have
  one by one), then the pipeline view and `check_tables` asked for one hour, as a run asks;
- one erasure (`spark_jobs/forget_users.py`): the user of the original data set with clicks in the
  most hours (the same user and hours at every size, the copies' users being others), found
  through the `user_hours` index, their raw partitions rewritten and their hours recomputed.
The goal is a flat line: at 10x, each per-batch figure and the erasure within 1.3x its 1x value,
the view and the check under 2 s. The report goes to `docs/benchmarks-scale.md` with the machine.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from app.producer.shards import process_count
from app.runtime.hive_metastore import HiveMetastore
from app.runtime.kafka_broker import KafkaBroker
from app.runtime.postgres import PostgresServer
from app.settings import REPO_ROOT, Settings, load_settings, with_own_names
from app.tools.bench.common import bench_settings, flat_data_folder, listing, machine, median_of, reached, timed
from app.tools.bench.producer import FloorRun, run_client_floors, sample_messages, write_payload_file
from app.tools.bench.replicate import replicate
from app.tools.bench.spark import FINAL_RECOMPUTE, PROGRESS, table_seconds

log = logging.getLogger("app.tools.bench.scale")

REPORT = REPO_ROOT / "docs" / "benchmarks-scale.md"
SIZES = (1, 3, 10)
FLAT_GOAL = 1.3  # at the largest size, a per-batch figure within this factor of the smallest's
VIEW_GOAL_SECONDS = 2.0
# the figures the flat-line goal holds to (one batch's or one request's cost, whatever the tables hold)
PER_BATCH_FIGURES = (
    "update_batch_seconds",
    "update_wall_seconds",
    "old_hour_wall_seconds",
    "erasure_seconds",
    "erasure_wall_seconds",
)
UPDATE_CLICKS = 100
UPDATE_HOURS = re.compile(r"recomputed (\d+) hour\(s\) landed by the drain")
READ_SET = re.compile(r"sessions started in \d+ hour\(s\): (\d+) more raw partition\(s\) read")
RECOMPUTED = re.compile(r"recomputed \d+ hour\(s\) from")
FAIR_DONE = re.compile(r"fair drain: (\d+) records, every table written in ([\d.]+) s")
FAIR_TABLE = re.compile(r"spark_jobs\.fair_drain: (\w+): written in ([\d.]+) s")
FAIR_GOAL = 0.8
ERASED = re.compile(
    r"forgot 1 user\(s\): (\d+) raw click\(s\) removed from (\d+) hour\(s\).*hours found in ([\d.]+) s, "
    r"all done in ([\d.]+) s"
)


@dataclass(frozen=True)
class SizeRun:
    size: int
    clicks: int  # records published: the click rows and the catalogue's
    publish_seconds: float  # the whole command
    publish_idle_seconds: float  # the whole command again, with nothing new to publish
    floor_seconds: float  # the producer's fair ceiling, timed inside its processes
    floor_wall_seconds: float  # the same, from the first process's start to the last one's exit
    floor_processes: int
    drain_rows: int
    drain_seconds: float  # the micro-batches and the drain's recomputation
    drain_wall_seconds: float
    fair_seconds: float  # the fair ceiling's work (after its Spark started)
    fair_wall_seconds: float
    update_batch_seconds: float  # the small update's micro-batches
    update_recompute_seconds: float
    update_wall_seconds: float  # its whole job, Spark's start included
    update_hours: int  # hours the update recomputed: every hour holding a click of the changed article
    old_hour_wall_seconds: float
    old_hour_read_partitions: int
    full_check_seconds: float  # every hour, by hand: grows with the hours
    view_seconds: float
    check_seconds: float  # one hour asked, the others reconciled before
    erasure_rows: int  # the user's raw clicks removed
    erasure_hours: int  # the hours they were in
    erasure_lookup_seconds: float  # finding those hours (the index)
    erasure_seconds: float  # the whole request in the job
    erasure_wall_seconds: float  # its whole job, Spark's start included
    drain_tables: dict[str, float] = field(default_factory=dict)  # seconds writing each table
    fair_tables: dict[str, float] = field(default_factory=dict)  # the fair ceiling's

    @property
    def drain_rate(self) -> float:
        return self.drain_rows / self.drain_seconds

    @property
    def producer_of_floor(self) -> float:
        """The producer's speed as a fraction of its fair ceiling's (whole command against whole command)."""
        return self.floor_wall_seconds / self.publish_seconds

    @property
    def of_fair_ceiling(self) -> float:
        """The drain's speed as a fraction of the fair ceiling's (work time against work time)."""
        return self.fair_seconds / self.drain_seconds


def _job(settings: Settings, script: str, *arguments: str) -> tuple[str, float]:
    from app.airflow.tasks import spark_job_environment
    from app.spark_session import SPARK_JOBS_DIR, spark_submit_command

    command = spark_submit_command(settings, str(SPARK_JOBS_DIR / script), list(arguments))
    command[1:1] = ["--conf", "spark.ui.enabled=false"]
    run = timed(command, {**os.environ, **spark_job_environment(settings)}, REPO_ROOT, script)
    return run.stdout + run.stderr, run.seconds


def _publish(settings: Settings) -> tuple[int, float]:
    import json

    run = timed(
        [sys.executable, "-m", "app.producer", "publish", "--json"],
        {**os.environ, **settings.environment()},
        REPO_ROOT,
        "our producer",
    )
    return int(json.loads(run.stdout)["rows"]), run.seconds


def _producer_floor(settings: Settings, records: int, sample_file: Path) -> FloorRun:
    """The producer's fair ceiling: the bare client sending `records` of the messages our producer
    published (20,000 of them, in turn) from as many processes as ours uses."""
    sample = sample_messages(settings, [settings.kafka_topic, settings.kafka_metadata_topic], 20_000)
    write_payload_file([key + b"\t" + value for key, value in sample], sample_file)
    value_bytes = statistics.fmean(len(value) for _, value in sample)
    return run_client_floors(settings, records, sample_file, value_bytes, process_count(settings))


def _batch_seconds(text: str) -> tuple[int, float, float]:
    """(rows, micro-batch seconds, the drain's final recomputation seconds) from a job's log."""
    rows = sum(int(found.group(2)) for found in PROGRESS.finditer(text))
    batches = sum(int(found.group(3)) for found in PROGRESS.finditer(text)) / 1000
    final = sum(float(found.group(1)) for found in FINAL_RECOMPUTE.finditer(text))
    return rows, batches, final


def _update_files(settings: Settings, data_dir: Path, folder: Path) -> None:
    import pandas as pd

    prefix = settings.producer_click_csv_data_prefix
    newest = max(data_dir.glob(f"{prefix}*.csv"), key=lambda path: int(path.stem.rsplit("_", 1)[-1]))
    clicks = pd.read_csv(newest).tail(UPDATE_CLICKS).copy()
    clicks["click_timestamp"] += 3_600_000
    number = int(newest.stem.rsplit("_", 1)[-1]) + 1
    clicks.to_csv(folder / f"{prefix}{number:03d}.csv", index=False)
    catalogue = f"{settings.producer_click_metadata_csv_data_prefix}.csv"
    articles = pd.read_csv(data_dir / catalogue)
    changed = articles[articles["article_id"] == int(clicks["click_article_id"].iloc[0])].copy()
    changed["category_id"] += 1000
    changed.to_csv(folder / f"{settings.producer_click_metadata_csv_data_prefix}_update.csv", index=False)


def _old_hour(data_dir: Path, settings: Settings) -> str:
    """The hour of the first clicks of the first file (`2017-10-01T03`)."""
    import pandas as pd

    prefix = settings.producer_click_csv_data_prefix
    first = min(data_dir.glob(f"{prefix}*.csv"), key=lambda path: int(path.stem.rsplit("_", 1)[-1]))
    moment = pd.to_datetime(pd.read_csv(first, usecols=["click_timestamp"])["click_timestamp"].min(), unit="ms")
    return str(moment.strftime("%Y-%m-%dT%H"))


def _erasure_user(source: Path, settings: Settings) -> int:
    """The user of the data set with clicks in the most hours (the smallest id of those)."""
    import pandas as pd

    hours: dict[int, set[int]] = {}
    for file in source.glob(f"{settings.producer_click_csv_data_prefix}*.csv"):
        frame = pd.read_csv(file, usecols=["user_id", "click_timestamp"])
        for user, hour in zip(frame["user_id"], frame["click_timestamp"] // 3_600_000, strict=True):
            hours.setdefault(int(user), set()).add(int(hour))
    return min(hours, key=lambda user: (-len(hours[user]), user))


def size_run(base: Settings, source: Path, scratch: Path, size: int, erased_user: int) -> SizeRun:
    from app.pipeline_view import read_state
    from app.table_checks import check_tables

    data = scratch / f"data-{size}x"
    replicate(source, data, size)
    settings = replace(with_own_names(base, scratch / f"pipeline-{size}x", "scale"), producer_data_root_directory=data)
    clicks, publish_seconds = _publish(settings)
    idle_rows, idle_seconds = _publish(settings)
    if idle_rows:
        raise SystemExit(f"a second publish at {size}x published {idle_rows} rows again")
    floor = _producer_floor(settings, clicks, scratch / f"floor-{size}x.tsv")
    log.info(
        "%sx: producer %.0f records/s, its fair ceiling %.0f (sending %.0f) in %s processes, idle run %.1f s",
        size, clicks / publish_seconds, clicks / floor.wall_seconds, floor.rate.records_per_second,
        floor.processes, idle_seconds,
    )  # fmt: skip
    text, drain_wall = _job(settings, "streaming_job.py", "--trigger", "available-now")
    rows, batches, final = _batch_seconds(text)
    if not rows:
        raise SystemExit(f"the drain at {size}x landed nothing:\n{text[-3000:]}")
    log.info("%sx: %s rows drained in %.1f s (wall %.1f s)", size, rows, batches + final, drain_wall)
    fair_text, fair_wall = _job(settings, "fair_drain.py", str(scratch / f"fair-{size}x"))
    fair = FAIR_DONE.search(fair_text)
    if fair is None or int(fair.group(1)) != rows:
        raise SystemExit(f"the fair ceiling at {size}x did not read the {rows} records drained:\n{fair_text[-3000:]}")
    shutil.rmtree(scratch / f"fair-{size}x", ignore_errors=True)

    update = scratch / f"update-{size}x"
    update.mkdir()
    _update_files(settings, data, update)
    updated = replace(settings, producer_data_root_directory=update)
    _publish(updated)
    update_text, update_wall = _job(updated, "streaming_job.py", "--trigger", "available-now")
    _, update_batches, update_final = _batch_seconds(update_text)

    hour = _old_hour(data, settings)
    old_text, old_wall = _job(settings, "recompute_hours.py", "--from", hour, "--to", hour)
    if not RECOMPUTED.search(old_text):
        raise SystemExit(f"recomputing {hour} at {size}x failed:\n{old_text[-3000:]}")
    read = [int(found.group(1)) for found in READ_SET.finditer(old_text)]

    started = time.perf_counter()
    full = check_tables(settings)
    full_check_seconds = time.perf_counter() - started
    if full.problems:
        raise SystemExit(f"the tables disagree at {size}x: {full.problems[:3]}")
    read_state(settings)  # the imports, as the view's warm-up does
    started = time.perf_counter()
    state = read_state(settings)
    view_seconds = time.perf_counter() - started
    for section in (state.kafka, state.ledger, state.tables, state.charts):
        if section.error:
            raise SystemExit(f"the view failed at {size}x: {section.error}")
    checked_hour = (hour[:10], int(hour[11:]))
    started = time.perf_counter()
    report = check_tables(settings, [checked_hour])
    check_seconds = time.perf_counter() - started
    if report.problems:
        raise SystemExit(f"the tables disagree at {size}x: {report.problems[:3]}")
    erasure_text, erasure_wall = _job(settings, "forget_users.py", "--user", str(erased_user), "--days-by-airflow")
    erasure = ERASED.search(erasure_text)
    if erasure is None:
        raise SystemExit(f"forgetting user {erased_user} at {size}x failed:\n{erasure_text[-3000:]}")
    run = SizeRun(
        size=size,
        clicks=clicks,
        publish_seconds=publish_seconds,
        publish_idle_seconds=idle_seconds,
        floor_seconds=floor.rate.seconds,
        floor_wall_seconds=floor.wall_seconds,
        floor_processes=floor.processes,
        drain_rows=rows,
        drain_seconds=batches + final,
        drain_wall_seconds=drain_wall,
        fair_seconds=float(fair.group(2)),
        fair_wall_seconds=fair_wall,
        update_batch_seconds=update_batches,
        update_recompute_seconds=update_final,
        update_wall_seconds=update_wall,
        update_hours=sum(int(found.group(1)) for found in UPDATE_HOURS.finditer(update_text)),
        old_hour_wall_seconds=old_wall,
        old_hour_read_partitions=sum(read),
        full_check_seconds=full_check_seconds,
        view_seconds=view_seconds,
        check_seconds=check_seconds,
        erasure_rows=int(erasure.group(1)),
        erasure_hours=int(erasure.group(2)),
        erasure_lookup_seconds=float(erasure.group(3)),
        erasure_seconds=float(erasure.group(4)),
        erasure_wall_seconds=erasure_wall,
        drain_tables=table_seconds(text),
        fair_tables={found.group(1): float(found.group(2)) for found in FAIR_TABLE.finditer(fair_text)},
    )
    log.info("%sx: %s", size, run)
    shutil.rmtree(data, ignore_errors=True)
    return run


def add_sizes_argument(parser: argparse.ArgumentParser) -> None:
    """`--sizes 1,3,10`, the copies of the data set the scale series measures (`make bench` and
    `make bench-scale` take the same)."""
    parser.add_argument(
        "--sizes",
        type=lambda text: [int(size) for size in text.split(",")],
        default=list(SIZES),
        help="the scale series' copies of the data set, e.g. 1,3,10",
    )


def scale_series(settings: Settings, source: Path, scratch: Path, sizes: list[int]) -> list[SizeRun]:
    """Every size in turn, smallest first, each a pipeline of its own in `scratch` on the services
    already running with `settings` (broker, PostgreSQL, metastore); `source` is a flat folder of
    the data set's files."""
    scratch.mkdir(parents=True, exist_ok=True)
    erased_user = _erasure_user(source, settings)
    return [size_run(settings, source, scratch, size, erased_user) for size in sorted(set(sizes))]


def scale_intro(sizes: list[int]) -> list[str]:
    """Item 9 of `make bench`'s report: what the scale series does, above its table."""
    ordered = sorted(set(sizes))

    def named(suffix: str) -> str:
        words = [f"{size}{suffix}" for size in ordered]
        return words[0] if len(words) == 1 else ", ".join(words[:-1]) + f" and {words[-1]}"

    return [
        f"## 9. How each cost grows: {named('x')} the data set",
        "",
        " ".join(
            [
                f"The click files replicated {named('')} times (`app/tools/bench/replicate.py`:",
                "each copy's users and sessions moved to ids of their own, its clicks moved by whole weeks;",
                "the catalogue shared), each size a pipeline of its own (fresh topics, lake, checkpoint and",
                "database) on the bench's broker, PostgreSQL and metastore, one run per size. At each size:",
                "our producer's whole command beside its fair ceiling (the bare Python client,",
                "`app/tools/bench/client_floor.py`, sending as many of our real messages with our headers and",
                "properties from as many processes) and a publish with nothing new (its fixed cost); the",
                "streaming job's available-now drain beside the drain's fair ceiling",
                "(`spark_jobs/fair_drain.py`: one plain batch job reading the same topics and writing the",
                "same tables with the same transforms, without the exactly-once and incremental machinery);",
                f"then on the tables of that size the small update ({UPDATE_CLICKS} clicks an hour after the",
                "newest and one changed article), an old hour's recomputation, `check_tables`, the pipeline",
                "view, and one erasure (the user with clicks in the most hours). The goals: a flat line (each",
                f"per-batch figure at {ordered[-1]}x within {FLAT_GOAL}x of its {ordered[0]}x value), the view",
                f"and the check under {VIEW_GOAL_SECONDS:.0f} s, and the producer and the drain at {FAIR_GOAL}",
                "or more of their fair ceilings.",
            ]
        ),
        "",
    ]


def scale_section(runs: list[SizeRun], title: str = "## Scale series") -> list[str]:
    first, last = runs[0], runs[-1]

    def ratio(value: float, base: float) -> str:
        return f"{value / base:.2f}" if base else "-"

    rows: list[tuple[str, Callable[[SizeRun], str], str | None]] = [
        ("records published (clicks and articles)", lambda r: f"{r.clicks:,}", None),
        ("producer (records/s, the whole command)", lambda r: f"{r.clicks / r.publish_seconds:,.0f}", None),
        ("  a run with nothing new to publish (s)", lambda r: f"{r.publish_idle_seconds:.1f}", None),
        (
            "producer's fair ceiling: the bare client (records/s, whole / sending)",
            lambda r: f"{r.clicks / r.floor_wall_seconds:,.0f} / {r.clicks / r.floor_seconds:,.0f}",
            None,
        ),
        ("the producer as a fraction of its fair ceiling", lambda r: f"{r.producer_of_floor:.2f}", None),
        ("drain (records/s, micro-batches and recomputation)", lambda r: f"{r.drain_rate:,.0f}", None),
        ("fair ceiling: its work (s)", lambda r: f"{r.fair_seconds:.1f}", None),
        ("the drain's work (s)", lambda r: f"{r.drain_seconds:.1f}", None),
        ("the drain as a fraction of the fair ceiling", lambda r: f"{r.of_fair_ceiling:.2f}", None),
        (
            "fair ceiling / drain, whole jobs (s)",
            lambda r: f"{r.fair_wall_seconds:.0f} / {r.drain_wall_seconds:.0f}",
            None,
        ),
        ("small update: micro-batch (s)", lambda r: f"{r.update_batch_seconds:.1f}", "update_batch_seconds"),
        ("small update: recomputation (s)", lambda r: f"{r.update_recompute_seconds:.1f}", "update_recompute_seconds"),
        ("small update: whole job (s)", lambda r: f"{r.update_wall_seconds:.1f}", "update_wall_seconds"),
        ("  hours it recomputed (those holding the changed article)", lambda r: f"{r.update_hours}", None),
        (
            "  recomputation per hour (s)",
            lambda r: f"{r.update_recompute_seconds / max(r.update_hours, 1):.2f}",
            None,
        ),
        ("one old hour recomputed: whole job (s)", lambda r: f"{r.old_hour_wall_seconds:.1f}", "old_hour_wall_seconds"),
        ("  raw partitions it read besides its own", lambda r: f"{r.old_hour_read_partitions}", None),
        ("pipeline view (s)", lambda r: f"{r.view_seconds:.2f}", None),
        ("`check_tables`, every hour by hand (s)", lambda r: f"{r.full_check_seconds:.1f}", None),
        ("`check_tables`, one hour as a run asks (s)", lambda r: f"{r.check_seconds:.2f}", None),
        ("one erasure: the user's clicks / hours", lambda r: f"{r.erasure_rows} / {r.erasure_hours}", None),
        ("  finding their hours (s)", lambda r: f"{r.erasure_lookup_seconds:.1f}", "erasure_lookup_seconds"),
        ("  the whole request (s)", lambda r: f"{r.erasure_seconds:.1f}", "erasure_seconds"),
        ("  whole job (s)", lambda r: f"{r.erasure_wall_seconds:.1f}", "erasure_wall_seconds"),
    ]
    header = "| figure | " + " | ".join(f"{r.size}x" for r in runs) + f" | {last.size}x / {first.size}x |"
    lines = [
        title,
        "",
        header,
        "|---|" + "---:|" * (len(runs) + 1),
    ]
    for label, show, attribute in rows:
        growth = ratio(getattr(last, attribute), getattr(first, attribute)) if attribute else ""
        lines.append(f"| {label} | " + " | ".join(show(r) for r in runs) + f" | {growth} |")
    labels = full_labels(rows)
    grown = [
        attribute
        for attribute in PER_BATCH_FIGURES
        if getattr(first, attribute) and getattr(last, attribute) / getattr(first, attribute) > FLAT_GOAL
    ]
    lines += [
        "",
        f"Goal: at {last.size}x each per-batch figure within {FLAT_GOAL}x of its {first.size}x value: "
        + (
            "met."
            if not grown
            else "missed by "
            + ", ".join(f"{labels[a]} ({getattr(last, a) / getattr(first, a):.2f}x)" for a in grown)
            + "."
        ),
    ]
    if "update_wall_seconds" in grown:
        lines.append(update_growth(first, last))
    lines += [
        f"The view under {VIEW_GOAL_SECONDS:.0f} s: {reached(VIEW_GOAL_SECONDS / last.view_seconds, 1.0)} "
        f"`check_tables` under {VIEW_GOAL_SECONDS:.0f} s: {reached(VIEW_GOAL_SECONDS / last.check_seconds, 1.0)}",
        f"The drain at {FAIR_GOAL} or more of the fair ceiling: "
        + fair_verdict({r.size: r.of_fair_ceiling for r in runs}),
        f"The producer at {FAIR_GOAL} or more of its fair ceiling (the bare client in "
        f"{last.floor_processes} process(es), whole commands): "
        + fair_verdict({r.size: r.producer_of_floor for r in runs}),
        f"Drain rate at each size (records/s): {listing([r.drain_rate for r in runs])}; "
        f"median {median_of([r.drain_rate for r in runs]):,.0f}.",
        *drain_profile(runs),
    ]
    return lines


def full_labels(rows: list[tuple[str, Callable[[SizeRun], str], str | None]]) -> dict[str, str]:
    """Each figure's label as a sentence can name it: an indented row takes its parent row's subject."""
    labels: dict[str, str] = {}
    subject = ""
    for label, _, attribute in rows:
        if label.startswith("  "):
            label = f"{subject}: {label.strip()}"
        else:
            subject = label.split(":")[0]
        if attribute:
            labels[attribute] = label.removesuffix(" (s)")
    return labels


def update_growth(first: SizeRun, last: SizeRun) -> str:
    """Why the small update's whole job grew: more hours to recompute, or a dearer hour."""
    per_hour_first = first.update_recompute_seconds / max(first.update_hours, 1)
    per_hour_last = last.update_recompute_seconds / max(last.update_hours, 1)
    cause = (
        "the work grew, not its cost per hour"
        if per_hour_last <= FLAT_GOAL * per_hour_first
        else "each hour also cost more"
    )
    return (
        f"The small update's recomputation rewrites every hour holding the changed article: "
        f"{first.update_hours} at {first.size}x, {last.update_hours} at {last.size}x (the copies share the catalogue), "
        f"at {per_hour_first:.2f} and {per_hour_last:.2f} s an hour: {cause} (`docs/design/flat-costs.md`)."
    )


def fair_verdict(fractions: dict[int, float]) -> str:
    """The verdict on the fair-ceiling goal over the sizes: met at every size, or where it was missed."""
    missed = [f"{size}x ({fraction:.2f})" for size, fraction in fractions.items() if fraction < FAIR_GOAL]
    return f"missed at {', '.join(missed)}." if missed else "met at every size."


def drain_profile(runs: list[SizeRun]) -> list[str]:
    """Where the drain's work goes against the fair ceiling's, table by table, at every size: each
    table's rows computed and written (the drain: its appends, its recomputation's replacements and
    their metastore calls), and the rest (reading Kafka, parsing, what runs between the writes)."""
    if not all(r.drain_tables and r.fair_tables for r in runs):
        return []
    names = sorted(
        {*runs[-1].drain_tables, *runs[-1].fair_tables}, key=lambda name: -runs[-1].drain_tables.get(name, 0)
    )

    def cells(drain: float, fair: float) -> str:
        return f"{drain:.1f} / {fair:.1f}"

    lines = [
        "",
        "### Where the drain's work goes, against the fair ceiling's",
        "",
        "Seconds, the drain / the fair ceiling: each table's rows computed and written (the drain's "
        "appends, its recomputation's replacements and their metastore calls), then the rest (reading "
        "Kafka, parsing, the work between the writes).",
        "",
        "| part | " + " | ".join(f"{r.size}x" for r in runs) + " |",
        "|---|" + "---:|" * len(runs),
    ]
    for name in names:
        lines.append(
            f"| {name} | "
            + " | ".join(cells(r.drain_tables.get(name, 0.0), r.fair_tables.get(name, 0.0)) for r in runs)
            + " |"
        )
    rest = [
        cells(r.drain_seconds - sum(r.drain_tables.values()), r.fair_seconds - sum(r.fair_tables.values()))
        for r in runs
    ]
    lines.append("| the rest | " + " | ".join(rest) + " |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.tools.bench.scale", description=__doc__)
    add_sizes_argument(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    base = load_settings()
    started = time.monotonic()
    facts = machine()
    with tempfile.TemporaryDirectory(prefix="clickstream-bench-scale-") as scratch_name:
        scratch = Path(scratch_name)
        scratch.chmod(0o711)  # as root, PostgreSQL runs as `postgres`, which must reach its folder
        settings = bench_settings(base, scratch / "state")
        settings = replace(settings, airflow_admin_password=secrets.token_urlsafe(16))
        source = scratch / "source"
        log.info("%s files from %s", flat_data_folder(settings.bench_data_dir, source), settings.bench_data_dir)
        services = [KafkaBroker(settings), PostgresServer(settings), HiveMetastore(settings)]
        try:
            for service in services:
                service.start()
            runs = scale_series(settings, source, scratch, args.sizes)
        finally:
            for service in reversed(services):
                service.stop()
    lines = [
        "# Scale benchmark",
        "",
        f"Run on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC at commit `{facts['commit']}`, "
        f"in {(time.monotonic() - started) / 60:.1f} min, "
        f"on {facts['cores']} cores, {facts['memory']} (`make bench-scale`, `app/tools/bench/scale.py`). "
        "Each size is a pipeline of its own on the same broker, PostgreSQL and metastore; one run per size.",
        "",
        *(f"- {key}: {value}" for key, value in facts.items() if key != "commit"),
        "",
        *scale_section(runs),
        "",
    ]
    REPORT.write_text("\n".join(lines))
    log.info("wrote %s", REPORT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
