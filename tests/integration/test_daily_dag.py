"""clickstream_daily through the real Airflow: scheduled on the landed hours' asset partitions, a day
runs once when its 24th hour lands (none before; a quiet hour between its files counts as empty),
once more when a late click changes one of its hours, and by hand with the day as a parameter; its
tables equal the independent computation; a day whose hours do not balance is refused, naming the
hour. A scheduled hourly run covers the hour that has just closed and speaks for no open hour, and
a day landed while clickstream_daily was paused is built by clickstream_catch_up, untriggered."""

from __future__ import annotations

import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pytest

from app.airflow.client import AirflowClient
from app.hours import hour_end, hour_key, hour_of
from app.metastore import Metastore
from app.parquet_folders import parquet_files
from app.reconciliation import ReconciliationTable, built_from_current
from app.settings import Settings
from tests.integration.expected import daily_tables
from tests.integration.jobs import SAMPLE, clicks_of_a_day
from tests.integration.test_daily import daily_rows

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

# the services every test here runs on (the Airflow fixtures start Airflow itself)
pytestmark = pytest.mark.usefixtures("kafka", "postgres", "metastore")

HOURLY = "clickstream_hourly"
DAILY = "clickstream_daily"
DAY = "2018-05-10"


def runs_of_day(client: AirflowClient, day: str) -> list[dict[str, Any]]:
    runs = client.call("GET", f"/api/v2/dags/{DAILY}/dagRuns?limit=100&order_by=id")["dag_runs"]
    return [run for run in runs if run.get("partition_key") == day]


def all_daily_runs(client: AirflowClient) -> list[dict[str, Any]]:
    return list(client.call("GET", f"/api/v2/dags/{DAILY}/dagRuns?limit=100")["dag_runs"])


def task_log(settings: Settings, dag: str, run_id: str, task_id: str) -> str:
    folder = settings.logs_dir / "airflow" / f"dag_id={dag}" / f"run_id={run_id}" / f"task_id={task_id}"
    return "\n".join(path.read_text(errors="replace") for path in sorted(folder.glob("attempt=*.log")))


def hourly_run(client: AirflowClient, data: Path, first: int | None = None, last: int | None = None) -> str:
    """A manual run over `data`: over the hours `first` to `last` of the day, or (None) over no hour
    of its own: then what its files touched is checked."""
    conf: dict[str, object] = {"data_dir": str(data)}
    if first is not None and last is not None:
        conf |= {"recompute_from": f"{DAY}T{first:02d}", "recompute_to": f"{DAY}T{last:02d}"}
    run_id = client.trigger(HOURLY, conf)
    outcome = client.wait_for_run(HOURLY, run_id, timeout=900)
    assert outcome.state == "success", outcome.task_states
    return run_id


def late_click(hour_file: Path, late_file: Path) -> None:
    """A file with one more click in the hour of `hour_file`: its latest click again, by a new user;
    published after the hour was announced."""
    frame = pd.read_csv(hour_file)
    frame = frame[frame["click_timestamp"] == frame["click_timestamp"].max()].head(1).copy()
    frame["user_id"] += 1_000_000
    frame.to_csv(late_file, index=False)


def daily_runs_become(client: AirflowClient, count: int, timeout: float = 300, day: str = DAY) -> list[dict[str, Any]]:
    """Wait until the day has `count` runs, all finished; they must all have succeeded."""
    deadline = time.monotonic() + timeout
    while True:
        runs = runs_of_day(client, day)
        if len(runs) >= count and all(run["state"] in ("success", "failed") for run in runs):
            break
        assert time.monotonic() < deadline, f"the day has runs {runs}, waiting for {count}"
        time.sleep(3)
    assert [run["state"] for run in runs] == ["success"] * count, runs
    return runs


CATCH_UP = "clickstream_catch_up"
QUIET_DAY = "2019-03-03"  # far from every other test's days: no quiet gap joins them


def latest_scheduled_run(client: AirflowClient) -> dict[str, Any]:
    """The hourly DAG's newest scheduled run, made by the scheduler once the DAG is unpaused; if it
    has finished (this session's Airflow ran it already, finding nothing new), it is cleared so that
    the scheduler runs it again: the same run, with the interval the timetable gave it."""
    client.unpause(HOURLY)
    deadline = time.monotonic() + 120
    path = f"/api/v2/dags/{HOURLY}/dagRuns?run_type=scheduled&order_by=-run_after&limit=1"
    while not (runs := client.call("GET", path)["dag_runs"]):
        assert time.monotonic() < deadline, "the scheduler made no scheduled run within 120 s"
        time.sleep(2)
    run = runs[0]
    if run["state"] in ("success", "failed"):
        body = {"dry_run": False, "dag_run_id": run["dag_run_id"], "only_failed": False, "reset_dag_runs": True}
        client.call("POST", f"/api/v2/dags/{HOURLY}/clearTaskInstances", body)
    return dict(run)


def test_a_scheduled_run_covers_the_closed_hour_and_a_day_landed_while_daily_was_paused_catches_up(
    airflow_client: AirflowClient, settings: Settings, spark: SparkSession
) -> None:
    data = settings.producer_data_root_directory  # what a scheduled run reads
    now = datetime.now(UTC)
    to_the_hour = 3600 - (now.minute * 60 + now.second)
    if to_the_hour < 240:  # a new scheduled run at the hour would race ours for the files
        time.sleep(to_the_hour + 20)
        now = datetime.now(UTC)
    written = clicks_of_a_day(data, QUIET_DAY, list(range(24)), per_hour=10)
    around_now = [now + timedelta(hours=shift) for shift in (-1, 0, 1)]  # a closed hour, this one, the next
    for moment in around_now:
        written += clicks_of_a_day(data, f"{moment:%Y-%m-%d}", [moment.hour], per_hour=10)
    for dag in (HOURLY, DAILY, CATCH_UP):
        airflow_client.wait_for_dag(dag)
    airflow_client.pause(DAILY)
    try:
        run = latest_scheduled_run(airflow_client)
        outcome = airflow_client.wait_for_run(HOURLY, run["dag_run_id"], timeout=900)
        assert outcome.state == "success", outcome.task_states

        # the run covers [end - 1 h, end), an hour that had closed when it was due
        start = datetime.fromisoformat(run["data_interval_start"])
        end = datetime.fromisoformat(run["data_interval_end"])
        assert end - start == timedelta(hours=1) and end == datetime.fromisoformat(run["run_after"]) <= now
        covered = f"{start:%Y-%m-%dT%H}"
        assert airflow_client.xcom(HOURLY, run["dag_run_id"], "hours_to_recompute") == [
            "--from",
            covered,
            "--to",
            covered,
        ]

        # it speaks for no hour that was not over when it checked, though clicks of those hours landed
        check = airflow_client.call(
            "GET", f"/api/v2/dags/{HOURLY}/dagRuns/{run['dag_run_id']}/taskInstances/check_tables"
        )
        checked_at = datetime.fromisoformat(check["start_date"])
        open_hours = {f"{moment:%Y-%m-%dT%H}" for moment in around_now if hour_end(hour_of(moment)) > checked_at}
        assert open_hours, "the clicks of this hour and the next were still open at the check"
        landed = set(airflow_client.xcom(HOURLY, run["dag_run_id"], "announce_landed_hours"))
        assert covered in landed and not landed & open_hours
        assert {f"{QUIET_DAY}T{hour:02d}" for hour in range(24)} <= landed
        days = {f"{moment:%Y-%m-%d}" for moment in around_now}
        reconciled = {hour_key(hour) for hour in ReconciliationTable(settings).read(days)}
        assert covered in reconciled and not reconciled & open_hours

        # the day landed while clickstream_daily was paused: once unpaused, it is built untriggered
        time.sleep(5)
        assert runs_of_day(airflow_client, QUIET_DAY) == []
        airflow_client.unpause(DAILY)
        airflow_client.unpause(CATCH_UP)
        deadline = time.monotonic() + 420
        while not any(
            run["state"] == "success" and airflow_client.task_states(DAILY, run["dag_run_id"])["build_day"] == "success"
            for run in runs_of_day(airflow_client, QUIET_DAY)
        ):
            assert time.monotonic() < deadline, runs_of_day(airflow_client, QUIET_DAY)
            time.sleep(5)
        summary = [row for row in daily_rows(spark, settings, "day_summary") if row[-1] == QUIET_DAY]
        assert [row[0] for row in summary] == [240], summary  # 24 hours of 10 clicks
        assert built_from_current(ReconciliationTable(settings).read([QUIET_DAY]), QUIET_DAY)
    finally:
        airflow_client.pause(CATCH_UP)
        airflow_client.pause(DAILY)
        for path in written:
            path.unlink()


# eight Airflow runs and four Spark builds of a day, one after another: 9 min alone on a quiet machine,
# over 15 min beside the other worker on a slow day (4 Dec 2026), past pytest's default guard
@pytest.mark.timeout(1800)
def test_a_day_runs_once_its_24th_hour_lands_and_again_when_an_hour_is_recomputed(
    airflow_client: AirflowClient,
    settings: Settings,
    spark: SparkSession,
    data_dir: Path,
    tmp_path: Path,
) -> None:
    data = data_dir
    shutil.copy(SAMPLE / "articles_metadata.csv", data)
    clicks_of_a_day(data, DAY, [hour for hour in range(23) if hour != 13])  # no file brings hour 13
    for dag in (HOURLY, DAILY):
        airflow_client.wait_for_dag(dag)
        airflow_client.unpause(dag)
    try:
        # 23 hours land, with no range asked: the quiet hour between the files is checked as empty
        first = hourly_run(airflow_client, data)
        landed = airflow_client.xcom(HOURLY, first, "announce_landed_hours")
        assert {f"{DAY}T{hour:02d}" for hour in range(23)} <= set(landed) and f"{DAY}T23" not in landed
        rows = ReconciliationTable(settings).read([DAY])
        quiet = rows[(DAY, 13)]
        assert (quiet["state"], quiet["published"], quiet["raw_clicks"]) == ("empty", 0, 0), quiet
        assert {rows[(DAY, hour)]["state"] for hour in range(23) if hour != 13} == {"balanced"}
        time.sleep(15)  # a few scheduler loops: 23 hours are not a day
        assert runs_of_day(airflow_client, DAY) == []

        # the 24th lands: one run of the day
        clicks_of_a_day(data, DAY, [23])
        hourly_run(airflow_client, data, 23, 23)
        (built,) = daily_runs_become(airflow_client, 1)
        files = sorted(data.glob("clicks_hour_*.csv"))
        expected = daily_tables(files, SAMPLE / "articles_metadata.csv")
        for table in ("article_daily", "category_daily", "day_summary"):
            assert {row for row in daily_rows(spark, settings, table) if row[-1] == DAY} == expected[table], table

        assert built_from_current(ReconciliationTable(settings).read([DAY]), DAY)  # the rows say what it was built from

        # a late click in an announced hour: the hour is announced again, and the day rebuilt with it
        every_run_before = len(all_daily_runs(airflow_client))
        late_click(data / f"clicks_hour_{DAY.replace('-', '')}_05.csv", data / "clicks_hour_late_05.csv")
        again = hourly_run(airflow_client, data)
        assert f"{DAY}T05" in airflow_client.xcom(HOURLY, again, "announce_landed_hours")
        assert airflow_client.xcom(HOURLY, again, "announce_recomputed_days") == [DAY]
        runs = daily_runs_become(airflow_client, 2)
        assert runs[0]["dag_run_id"] == built["dag_run_id"]
        time.sleep(15)
        assert len(runs_of_day(airflow_client, DAY)) == 2
        assert len(all_daily_runs(airflow_client)) == every_run_before + 1
        expected = daily_tables(sorted(data.glob("clicks_hour_*.csv")), SAMPLE / "articles_metadata.csv")
        for table in ("article_daily", "category_daily", "day_summary"):
            assert {row for row in daily_rows(spark, settings, table) if row[-1] == DAY} == expected[table], table
        rows = ReconciliationTable(settings).read([DAY])
        assert rows[(DAY, 5)]["raw_clicks"] == 51 and built_from_current(rows, DAY)

        # by hand, with the day as the parameter
        manual = airflow_client.trigger(DAILY, {"day": DAY})
        outcome = airflow_client.wait_for_run(DAILY, manual, timeout=600)
        assert outcome.state == "success", outcome.task_states

        # a raw file of hour 07 goes missing: the hourly check fails naming it, and the day is refused
        locations = Metastore(settings.hive_metastore_uri, settings.hive_database).partition_locations("raw_clicks")
        victim = parquet_files(locations[f"dt={DAY}/hour=7"])[0]
        aside = tmp_path / victim.name
        shutil.move(victim, aside)
        try:
            failed = airflow_client.trigger(
                HOURLY, {"data_dir": str(data), "recompute_from": f"{DAY}T07", "recompute_to": f"{DAY}T07"}
            )
            outcome = airflow_client.wait_for_run(HOURLY, failed, timeout=900)
            assert outcome.state == "failed" and outcome.task_states["check_tables"] == "failed", outcome.task_states
            refused = airflow_client.trigger(DAILY, {"day": DAY})
            outcome = airflow_client.wait_for_run(DAILY, refused, timeout=600)
            assert outcome.state == "failed" and outcome.task_states["hours_balanced"] == "failed", outcome.task_states
            assert outcome.task_states["build_day"] == "upstream_failed"
            log = task_log(settings, DAILY, refused, "hours_balanced")
            assert f"{DAY}T07: the ledger published 50 click(s) of this hour, raw_clicks holds" in log, log[-3000:]
        finally:
            shutil.move(aside, victim)
        hourly_run(airflow_client, data, 7, 7)  # the file is back: the hour balances again
    finally:
        airflow_client.pause(DAILY)
