"""`make bench`, item 4: one `clickstream_hourly` run over the whole data folder, through Airflow as a
user triggers it from the UI, from the trigger to the last Hive partition, and where its time goes.

Every run has an Airflow of its own settings (fresh topics, database, lake and checkpoint), so it
starts from nothing and publishes every file. The time is split with the task instances' times
(Airflow's API) and the drain's own log lines (in the task's log): scheduling (trigger to the
first task, and the gaps between tasks), publishing, Spark start-up (the drain task's time outside
its work), landing raw data (the micro-batches), recomputing aggregates (after the micro-batches,
or inside them for a stream that recomputes each), and the check.

While that run's Airflow still runs (the same services around both), the bare query drains the
same topics (item 3's ceiling), and then a small update goes through Airflow (item 7): one new
click file of 100 clicks and one changed article, after the whole data folder is in.

Item 10 runs both again with the tables on HDFS (`store_section`), without the bare query.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from app.airflow.client import AirflowClient
from app.runtime.airflow_server import Airflow
from app.settings import Settings
from app.tools.bench.common import PeakMemory
from app.tools.bench.spark import (
    FINAL_RECOMPUTE,
    PROGRESS,
    DrainRun,
    bare_run,
    event_log_profile,
    files_written,
    progress,
    table_seconds,
)

log = logging.getLogger(__name__)

DAG = "clickstream_hourly"
BATCH_RECOMPUTED = re.compile(r"batch \d+: \d+ clicks, .* hour\(s\) recomputed")
RAW_LANDED = re.compile(r"raw_clicks: appended")
UPDATE_CLICKS = 100


@dataclass(frozen=True)
class AirflowRun:
    total_seconds: float  # trigger to the end of the drain: the last Hive partition written
    run_seconds: float  # trigger to the end of the run (the check included)
    scheduling: float
    publishing: float
    spark_start_up: float
    landing: float
    recomputing: float
    checking: float
    drain: DrainRun  # the drain task's streaming job: item 3's "ours"
    bare: DrainRun | None  # the bare query over the same topics, with this run's Airflow still up
    update: SmallUpdate


@dataclass(frozen=True)
class SmallUpdate:
    """A `clickstream_hourly` run for one new click file of 100 clicks and one changed article."""

    drain_task_seconds: float  # the drain_topics task, Spark start-up included
    batch_seconds: float  # its micro-batches (landing; hours recomputed after them)
    recompute_seconds: float  # the recomputation of the hours landed, after the micro-batches
    hours_recomputed: int
    run_seconds: float  # trigger to the end of the run


class BenchAirflow(Airflow):
    """The project's Airflow, without scheduled runs: unpausing the DAG would otherwise start the
    latest hour's run beside the triggered one, and the two would share the work."""

    def environment(self) -> dict[str, str]:
        return {**super().environment(), "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False"}


def _time(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def drain_split(task_log: str) -> tuple[float, float, int]:
    """(processing seconds, of which recomputing aggregates, rows) from the drain's log. Processing is
    the micro-batches and the recomputation after them; a micro-batch that recomputes its own hours
    (a long-running stream) does so from its `raw_clicks: replaced` line to its `batch N: ... clicks`
    line."""
    rows, _, processing = progress(task_log)
    recomputing = sum(float(m.group(1)) for m in FINAL_RECOMPUTE.finditer(task_log))
    landed_at = None
    for line in task_log.splitlines():
        stamp = _log_time(line)
        if stamp is None:
            continue
        if RAW_LANDED.search(line):
            landed_at = stamp
        elif BATCH_RECOMPUTED.search(line) and landed_at is not None:
            recomputing += stamp - landed_at
            landed_at = None
    return processing, recomputing, rows


def _log_time(line: str) -> float | None:
    found = re.search(r"(\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}[.,]\d+)", line)
    if not found:
        return None
    return datetime.fromisoformat(found.group(1).replace(",", ".").replace(" ", "T") + "+00:00").timestamp()


def run_through_airflow(settings: Settings, data_dir: Path, scratch: Path, with_bare: bool = True) -> AirflowRun:
    """One `clickstream_hourly` run over `data_dir` on an Airflow of its own, then (`with_bare`) the
    bare query over the topics it published, then a small update."""
    airflow = BenchAirflow(settings)
    airflow.start()
    memory = PeakMemory(lambda argv: any(arg.endswith("streaming_job.py") for arg in argv))
    try:
        client = AirflowClient(settings.airflow_url, settings.airflow_admin_user, airflow.admin_password())
        client.wait_for_dag(DAG)
        client.unpause(DAG)
        with memory:
            run_id = client.trigger(DAG, {"data_dir": str(data_dir)})
            _wait_for_success(client, run_id)
        run = client.call("GET", f"/api/v2/dags/{DAG}/dagRuns/{run_id}")
        tasks = _tasks(client, run_id)
        drain_log = _task_log(settings, run_id, "drain_topics")
        # the last streaming application in the event log, before the small update adds its own
        profile = event_log_profile(settings.state_dir / "spark" / "events", "clickstream-streaming")
        bare = bare_run(settings, scratch / "bare") if with_bare else None
        update = small_update(settings, client, data_dir, scratch / "update")
    finally:
        airflow.stop()
    started = _time(run["queued_at"] or run["start_date"])
    ended = _time(run["end_date"])
    ran = sorted(
        (_time(task["start_date"]), _time(task["end_date"]), task_id)
        for task_id, task in tasks.items()
        if task.get("start_date") and task.get("end_date")
    )
    busy = {task_id: end - start for start, end, task_id in ran}
    scheduling, previous_end = 0.0, started
    for start, end, _ in ran:
        scheduling += max(0.0, start - previous_end)
        previous_end = max(previous_end, end)
    in_batches, recomputing, rows = drain_split(drain_log)
    drain_end = next(end for _, end, task_id in ran if task_id == "drain_topics")
    drain = DrainRun(
        rows=rows,
        batches=len(PROGRESS.findall(drain_log)),
        query_seconds=in_batches,
        wall_seconds=busy.get("drain_topics", 0.0),
        driver_java_mib=memory.peak_mib("java"),
        driver_python_mib=memory.peak_mib("python"),
        table_seconds=table_seconds(drain_log),
        files=files_written(drain_log),
        profile=profile,
    )
    return AirflowRun(
        total_seconds=drain_end - started,
        run_seconds=ended - started,
        scheduling=scheduling + sum(v for k, v in busy.items() if k in ("wait_for_new_files", "hours_to_recompute")),
        publishing=busy.get("publish_articles", 0.0) + busy.get("publish_clicks", 0.0),
        spark_start_up=busy.get("drain_topics", 0.0) - in_batches,
        landing=in_batches - recomputing,
        recomputing=recomputing + busy.get("recompute_hours", 0.0),
        checking=busy.get("check_tables", 0.0),
        drain=drain,
        bare=bare,
        update=update,
    )


def update_section(runs: list[AirflowRun]) -> list[str]:
    """Item 7 of the report: the small update's figures, with the goals."""
    from app.tools.bench.common import listing, median_of

    updates = [run.update for run in runs]
    batch = median_of(u.batch_seconds for u in updates)
    task = median_of(u.drain_task_seconds for u in updates)
    return [
        "## 7. A small update",
        "",
        f"After each run of item 4 (the whole data folder in the tables), a `clickstream_hourly` run for one new "
        f"click file of {UPDATE_CLICKS} clicks (the last ones of the last file, an hour later) and one changed "
        "article (the article of the first of those clicks, in another category), triggered as the UI does. "
        "Before this stage's storage, the same kind of update (2 article records and 24 clicks) took 122 s "
        "in `drain_topics` (measured when the issue was filed).",
        "",
        "| | seconds (median) | runs |",
        "|---|---:|---|",
        f"| `drain_topics` micro-batches (landing) | {batch:,.1f} | {listing((u.batch_seconds for u in updates), 1)} |",
        f"| recomputing the hours it touched | {median_of(u.recompute_seconds for u in updates):,.1f} | "
        f"{listing((u.recompute_seconds for u in updates), 1)} |",
        f"| hours recomputed | {median_of(u.hours_recomputed for u in updates):,.0f} | "
        f"{listing(u.hours_recomputed for u in updates)} |",
        f"| the `drain_topics` task, Spark start-up included | {task:,.1f} | "
        f"{listing((u.drain_task_seconds for u in updates), 1)} |",
        f"| the whole run | {median_of(u.run_seconds for u in updates):,.1f} | "
        f"{listing((u.run_seconds for u in updates), 1)} |",
        "",
        f"**Micro-batch time {batch:.1f} s** (goal: under 10 s): {'met' if batch < 10 else 'missed'}; "
        f"**the task {task:.1f} s** (goal: under 40 s): {'met' if task < 40 else 'missed'}.",
        "",
    ]


def _wait_for_success(client: AirflowClient, run_id: str) -> None:
    outcome = client.wait_for_run(DAG, run_id, timeout=1800, poll=2)
    if outcome.state != "success":
        raise SystemExit(f"the benchmark's {DAG} run {run_id} ended {outcome.state}: {outcome.task_states}")


def _tasks(client: AirflowClient, run_id: str) -> dict[str, dict[str, str]]:
    listed = client.call("GET", f"/api/v2/dags/{DAG}/dagRuns/{run_id}/taskInstances")["task_instances"]
    return {task["task_id"]: task for task in listed}


def small_update(settings: Settings, client: AirflowClient, data_dir: Path, folder: Path) -> SmallUpdate:
    """After the whole data folder is in: a run for 100 new clicks (the last 100 of the last click
    file, an hour later) and one changed article (the first of those clicks' article, in another
    category), in a folder of their own."""
    import pandas as pd

    folder.mkdir(parents=True, exist_ok=True)
    last = sorted(data_dir.glob(f"{settings.producer_click_csv_data_prefix}*"))[-1]
    clicks = pd.read_csv(last).tail(UPDATE_CLICKS).copy()
    clicks["click_timestamp"] += 3_600_000
    clicks.to_csv(folder / f"{settings.producer_click_csv_data_prefix}900.csv", index=False)
    articles = pd.read_csv(data_dir / f"{settings.producer_click_metadata_csv_data_prefix}.csv")
    changed = articles[articles["article_id"] == int(clicks["click_article_id"].iloc[0])].copy()
    changed["category_id"] += 1000
    changed.to_csv(folder / f"{settings.producer_click_metadata_csv_data_prefix}_update.csv", index=False)
    run_id = client.trigger(DAG, {"data_dir": str(folder)})
    _wait_for_success(client, run_id)
    run = client.call("GET", f"/api/v2/dags/{DAG}/dagRuns/{run_id}")
    drain = _tasks(client, run_id)["drain_topics"]
    drain_log = _task_log(settings, run_id, "drain_topics")
    batch_ms = sum(int(found.group(3)) for found in PROGRESS.finditer(drain_log))
    recompute = sum(float(found.group(1)) for found in FINAL_RECOMPUTE.finditer(drain_log))
    hours = sum(int(found) for found in re.findall(r"recomputing (\d+) hour\(s\) landed by the drain", drain_log))
    return SmallUpdate(
        drain_task_seconds=_time(drain["end_date"]) - _time(drain["start_date"]),
        batch_seconds=batch_ms / 1000,
        recompute_seconds=recompute,
        hours_recomputed=hours,
        run_seconds=_time(run["end_date"]) - _time(run["queued_at"] or run["start_date"]),
    )


def _task_log(settings: Settings, run_id: str, task_id: str) -> str:
    folder = settings.logs_dir / "airflow" / f"dag_id={DAG}" / f"run_id={run_id}" / f"task_id={task_id}"
    return "\n".join(path.read_text(errors="replace") for path in sorted(folder.glob("attempt=*.log")))


def store_section(local: list[AirflowRun], hdfs: list[AirflowRun]) -> list[str]:
    """Item 10 of the report: item 4's run and item 7's update with the tables on HDFS, beside the
    same on the local file system (each HDFS run right after its local one, `local[i]` the one
    before `hdfs[i]`)."""
    from app.tools.bench.common import median_of

    rows: list[tuple[str, Callable[[AirflowRun], float], int]] = [
        ("trigger to last partition", lambda run: run.total_seconds, 1),
        ("whole run, `check_tables` included", lambda run: run.run_seconds, 1),
        ("the drain's micro-batches and recomputation", lambda run: run.drain.query_seconds, 1),
        ("of which landing the raw rows", lambda run: run.landing, 1),
        ("the `drain_topics` task, Spark start-up included", lambda run: run.drain.wall_seconds, 1),
        ("`check_tables`", lambda run: run.checking, 1),
        ("drain rate (records/s over the micro-batches and recomputation)", lambda run: run.drain.rows_per_second, 0),
        ("small update: micro-batches", lambda run: run.update.batch_seconds, 1),
        ("small update: the `drain_topics` task", lambda run: run.update.drain_task_seconds, 1),
        ("small update: the whole run", lambda run: run.update.run_seconds, 1),
    ]
    lines = [
        "## 10. The tables on HDFS",
        "",
        "Item 4's run and item 7's small update again, with `PARQUET_DESTINATION_PATH`, `CHECK_POINT_LOCATION` "
        "and `HIVE_WAREHOUSE_DIR` on an HDFS of the benchmark's own (Hadoop 3.5.0, one NameNode and one "
        "DataNode on this machine, one replica per block), each HDFS run right after its local one "
        f"({len(hdfs)} of them: the bench's time goes to the scale series). Spark "
        "writes through Hadoop's HDFS client; the commits' renames, the checkpoint's small files and the "
        "check read and write through WebHDFS (`docs/design/storage.md`).",
        "",
        "| | local file system (median of the runs paired) | HDFS (median) | HDFS / local | HDFS runs |",
        "|---|---:|---:|---:|---|",
    ]
    local = local[: len(hdfs)]
    for label, value, digits in rows:
        here = median_of(value(run) for run in local)
        there = median_of(value(run) for run in hdfs)
        runs = ", ".join(f"{value(run):,.{digits}f}" for run in hdfs)
        lines.append(f"| {label} | {here:,.{digits}f} | {there:,.{digits}f} | {there / here:.2f} | {runs} |")
    files = median_of(float(run.drain.files or 0) for run in hdfs)
    lines += [
        "",
        f"Files the drain wrote on HDFS: {files:,.0f} (median). Seconds, except the rate.",
        "",
    ]
    return lines
