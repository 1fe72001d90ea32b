"""The main job on the embedded default: `make demo`.

Starts the local services (Kafka, the Hive Metastore, the Spark History Server, Airflow), then
runs the pipeline through Airflow: it unpauses the batch DAGs (`clickstream_hourly`,
`clickstream_daily`, `clickstream_catch_up`), triggers a run of `clickstream_hourly` over the
example data in `PRODUCER_DATA_ROOT_DIRECTORY` (default `app/data/`) as the UI's Trigger button
does, and waits for it. Unpausing the hourly DAG also makes the scheduler start its run for the
hour that has just closed, which looks for new files in the same folder: whichever of the two runs
publishes a file first publishes it, exactly once, and the summary reports every run the demo
caused with what each published. The runs drain both topics with the streaming job into the raw
Parquet tables and the hourly Hive aggregates, and check them. Then it prints a summary: rows per
topic, rejects, every table's row count, the busiest hour's top articles and categories, and the
URLs with the login. It leaves the services running for you to explore; `make down` stops them.
Running it again publishes and counts nothing twice.
"""

from __future__ import annotations

import logging
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from rich.console import Console

from app.airflow.client import AirflowApiError, AirflowClient
from app.kafka_io import KafkaSetupError
from app.producer.ledger import LedgerReadError, read_ledger
from app.runtime.__main__ import format_status, up
from app.runtime.airflow_server import Airflow
from app.runtime.local import LocalRuntime
from app.runtime.process import RuntimeErrorWithHint
from app.settings import Settings, SettingsError, load_settings
from app.spark_session import build_spark_session
from app.summary import summarise_tables

log = logging.getLogger(__name__)


DAG = "clickstream_hourly"
DAILY = "clickstream_daily"
BATCH_DAGS = (DAG, DAILY, "clickstream_catch_up")  # unpaused by the demo; the stream is started by hand
PUBLISHING = ("publish_articles", "publish_clicks")
SENSING = ("up_for_reschedule", "running", "scheduled", "queued", "deferred", None)


def only_waiting_for_files(task_states: dict[str, str | None]) -> bool:
    """Whether a run is still at its sensor with nothing published: once the demo's files are taken by
    another run, it finds nothing new and ends as skipped after `AIRFLOW_SENSOR_TIMEOUT_SECONDS`."""
    return task_states.get("wait_for_new_files") in SENSING and all(
        task_states.get(task) in (None, "scheduled", "queued") for task in PUBLISHING
    )


def wait_for_days_built(
    airflow: AirflowClient, settings: Settings, since: datetime, timeout: float = 300
) -> tuple[list[dict[str, Any]], list[str]]:
    """The runs of the daily DAG the demo caused, once every complete day is built (the landed hours
    schedule them) and none is still running, or `timeout` has passed; and the days still due."""
    from app.airflow.tasks import days_due

    deadline = time.monotonic() + timeout
    while True:
        runs = airflow.runs_queued_since(DAILY, since)
        due = days_due(settings)
        finished = all(run["state"] in ("success", "failed") for run in runs)
        if (finished and not due) or time.monotonic() > deadline:
            return runs, due
        time.sleep(5)


def wait_for_runs_caused(
    airflow: AirflowClient, since: datetime, own_run: str, timeout: float = 3600
) -> list[tuple[dict[str, Any], dict[str, str | None]]]:
    """Every run of the hourly DAG due since the demo began (its own, and the one the scheduler made
    when the DAG was unpaused), each once finished or only waiting for files; with its task states."""
    deadline = time.monotonic() + timeout
    while True:
        runs = airflow.runs_queued_since(DAG, since)
        states = {run["dag_run_id"]: airflow.task_states(DAG, run["dag_run_id"]) for run in runs}
        pending = [
            run
            for run in runs
            if run["state"] not in ("success", "failed")
            and (run["dag_run_id"] == own_run or not only_waiting_for_files(states[run["dag_run_id"]]))
        ]
        if not pending or time.monotonic() > deadline:
            return [(run, states[run["dag_run_id"]]) for run in runs]
        time.sleep(5)


def main() -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("app.airflow.client").setLevel(logging.INFO)  # one line per task as it changes state
    console = Console(width=160)
    try:
        settings = load_settings()
        runtime = LocalRuntime(settings)
        console.print(
            "[bold]1/3[/bold] starting Kafka, PostgreSQL, the Hive Metastore, the Spark History Server and Airflow on",
            settings.bind_host,
        )
        login = up(settings, runtime, lambda line: console.print(f"  {line}"))
        airflow = AirflowClient(settings.airflow_url, settings.airflow_admin_user, Airflow(settings).admin_password())
        began = datetime.now(UTC)
        for dag in BATCH_DAGS:
            airflow.wait_for_dag(dag)
            airflow.unpause(dag)
        run_id = airflow.trigger(DAG, {"data_dir": str(settings.producer_data_root_directory)})
        run_url = f"{settings.airflow_url}/dags/{DAG}/runs/{run_id}"
        console.print(f"[bold]2/3[/bold] running {DAG} over {settings.producer_data_root_directory}: {run_url}")
        outcome = airflow.wait_for_run(DAG, run_id, timeout=3600)
        if outcome.state != "success":
            failed = [task for task, state in outcome.task_states.items() if state not in ("success", "skipped")]
            print(f"error: the run {run_id} ended {outcome.state}; see the log of {', '.join(failed)} at {run_url}")
            return 1
        caused = wait_for_runs_caused(airflow, began, run_id)
        published = {
            run["dag_run_id"]: {
                task: airflow.xcom(DAG, run["dag_run_id"], task) if states.get(task) == "success" else {}
                for task in PUBLISHING
            }
            for run, states in caused
        }
        daily_runs, still_due = wait_for_days_built(airflow, settings, began)
        ledger = read_ledger(settings)
        console.print("[bold]3/3[/bold] reading the Hive tables through the metastore")
        spark = build_spark_session(settings, "clickstream-demo-summary")
        spark.sparkContext.setLogLevel("ERROR")
        try:
            tables = summarise_tables(spark, settings)
        finally:
            spark.stop()
    except (RuntimeErrorWithHint, SettingsError, KafkaSetupError, LedgerReadError, AirflowApiError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    console.print(f"\n[bold]the runs of {DAG} this demo caused[/bold] (every file is published by one of them, once)")
    for run, task_states in caused:
        states = Counter(state or "none" for state in task_states.values())
        counted = ", ".join(f"{count} {state}" for state, count in sorted(states.items()))
        why = (
            "the demo's trigger"
            if run["dag_run_id"] == run_id
            else f"{run['run_type']}, made when the DAG was unpaused"
        )
        console.print(f"  {run['dag_run_id']} ({why}): {run['state']}; tasks {counted}")
        if only_waiting_for_files(task_states) and run["state"] not in ("success", "failed"):
            console.print("    waiting for new files: the other run published them; it ends as skipped")
        for task, summary in published[run["dag_run_id"]].items():
            console.print(f"    {task}: {summary.get('rows', 0):,} rows, {summary.get('rejected', 0):,} rejected")
    in_all = {task: sum(int(runs[task].get("rows", 0)) for runs in published.values()) for task in PUBLISHING}
    console.print("  in all: " + ", ".join(f"{task} {count:,} rows" for task, count in in_all.items()))
    console.print(f"\n[bold]the days built[/bold] ({DAILY}: a day runs once its 24 hours are balanced or empty)")
    for run in daily_runs:
        console.print(f"  {run.get('partition_key') or run['dag_run_id']}: {run['state']}")
    if not daily_runs:
        console.print("  none: no day of the data has all 24 hours checked yet")
    if still_due:
        console.print(f"  still due (clickstream_catch_up builds them): {', '.join(still_due)}")
    by_topic: dict[str, tuple[int, int]] = {}
    for entry in ledger.values():
        rows, rejected = by_topic.get(entry.topic, (0, 0))
        by_topic[entry.topic] = (rows + entry.rows, rejected + entry.rejected)
    console.print("\n[bold]rows in the topics[/bold] (all runs, from the ledger)")
    for topic, (rows, rejected) in sorted(by_topic.items()):
        console.print(f"  {topic}: {rows:,} rows, {rejected:,} rejected (in {settings.kafka_rejects_topic})")
    console.print(f"\n[bold]Hive tables[/bold] (database {settings.hive_database})")
    for table, count in tables.row_counts.items():
        console.print(f"  {table}: {count:,} rows")
    if tables.busiest_hour:
        dt, hour = tables.busiest_hour
        console.print(f"\n[bold]busiest hour[/bold]: {dt} {hour:02d}:00 UTC, {tables.busiest_hour_clicks:,} clicks")
        console.print(
            "  top articles (article, category, clicks): "
            + "; ".join(f"{a}, {c}, {n}" for a, c, n in tables.top_articles)
        )
        console.print(
            "  top categories (category, clicks, users): "
            + "; ".join(f"{c}, {n}, {u}" for c, n, u in tables.top_categories)
        )
    console.print("\n[bold]services[/bold]")
    console.print(format_status(runtime.status()))
    console.print(login)
    console.print(f"this run: {run_url}")
    console.print(f"Spark UI: {settings.spark_history_url} (every Spark job of the run; no login, loopback only)")
    console.print(f"SQL on the tables: make sql  ({settings.spark_thrift_jdbc_url})")
    console.print("Stop everything with: make down")
    return 0


if __name__ == "__main__":
    sys.exit(main())
