"""clickstream_daily through the real Airflow: scheduled on the landed hours' asset partitions, a day
runs once when its 24th hour lands (none before), once more when one of its hours is recomputed, and
by hand with the day as a parameter; its tables equal the independent computation; a day whose
hours do not balance is refused, naming the hour."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from app.airflow.client import AirflowClient
from app.metastore import Metastore
from app.parquet_folders import parquet_files
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


def hourly_run(client: AirflowClient, data: Path, first: int, last: int) -> str:
    run_id = client.trigger(
        HOURLY, {"data_dir": str(data), "recompute_from": f"{DAY}T{first:02d}", "recompute_to": f"{DAY}T{last:02d}"}
    )
    outcome = client.wait_for_run(HOURLY, run_id, timeout=900)
    assert outcome.state == "success", outcome.task_states
    return run_id


def daily_runs_become(client: AirflowClient, count: int, timeout: float = 300) -> list[dict[str, Any]]:
    """Wait until the day has `count` runs, all finished; they must all have succeeded."""
    deadline = time.monotonic() + timeout
    while True:
        runs = runs_of_day(client, DAY)
        if len(runs) >= count and all(run["state"] in ("success", "failed") for run in runs):
            break
        assert time.monotonic() < deadline, f"the day has runs {runs}, waiting for {count}"
        time.sleep(3)
    assert [run["state"] for run in runs] == ["success"] * count, runs
    return runs


def test_a_day_runs_once_its_24th_hour_lands_and_again_when_an_hour_is_recomputed(
    airflow_client: AirflowClient,
    settings: Settings,
    spark: SparkSession,
    data_dir: Path,
    tmp_path: Path,
) -> None:
    data = data_dir
    shutil.copy(SAMPLE / "articles_metadata.csv", data)
    clicks_of_a_day(data, DAY, [hour for hour in range(23) if hour != 13])  # hour 13 stays empty
    for dag in (HOURLY, DAILY):
        airflow_client.wait_for_dag(dag)
        airflow_client.unpause(dag)
    try:
        # 23 hours land (the empty one counts): not yet
        first = hourly_run(airflow_client, data, 0, 22)
        landed = airflow_client.xcom(HOURLY, first, "announce_landed_hours")
        assert {f"{DAY}T{hour:02d}" for hour in range(23)} <= set(landed)
        time.sleep(15)  # a few scheduler loops
        assert runs_of_day(airflow_client, DAY) == []

        # the 24th lands: one run of the day
        clicks_of_a_day(data, DAY, [23])
        hourly_run(airflow_client, data, 23, 23)
        (built,) = daily_runs_become(airflow_client, 1)
        files = sorted(data.glob("clicks_hour_*.csv"))
        expected = daily_tables(files, SAMPLE / "articles_metadata.csv")
        for table in ("article_daily", "category_daily", "day_summary"):
            assert {row for row in daily_rows(spark, settings, table) if row[-1] == DAY} == expected[table], table

        # one hour recomputed: one more run of that day, and nothing else
        every_run_before = len(all_daily_runs(airflow_client))
        again = hourly_run(airflow_client, data, 5, 5)
        assert airflow_client.xcom(HOURLY, again, "announce_recomputed_days") == [DAY]
        runs = daily_runs_become(airflow_client, 2)
        assert runs[0]["dag_run_id"] == built["dag_run_id"]
        time.sleep(15)
        assert len(runs_of_day(airflow_client, DAY)) == 2
        assert len(all_daily_runs(airflow_client)) == every_run_before + 1

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
