"""clickstream_hourly through the real Airflow: triggered with parameters, it publishes, drains
and recomputes, and its Hive partitions equal the independent computation from the CSVs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from app.airflow_client import AirflowClient
from app.runtime.services import Airflow, Service
from app.settings import REPO_ROOT, Settings
from tests.integration.expected import expected_tables
from tests.integration.test_spark_jobs import aggregates, table_rows

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

SAMPLE = REPO_ROOT / "app" / "data"
DAG = "clickstream_hourly"


def test_hourly_dag_run_over_the_sample(
    kafka: Service,
    metastore: Service,
    airflow_client: AirflowClient,
    settings: Settings,
    spark: SparkSession,
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for path in SAMPLE.glob("*.csv"):
        shutil.copy(path, data / path.name)
    airflow_client.wait_for_dag(DAG)
    airflow_client.unpause(DAG)

    bad_status, _ = airflow_client.request(
        "POST", f"/api/v2/dags/{DAG}/dagRuns", {"logical_date": None, "conf": {"recompute_from": "yesterday"}}
    )
    assert bad_status in (400, 422)  # the parameter's pattern refuses it before any run starts

    run_id = airflow_client.trigger(
        DAG, {"data_dir": str(data), "recompute_from": "2017-10-01T00", "recompute_to": "2017-10-01T23"}
    )
    outcome = airflow_client.wait_for_run(DAG, run_id, timeout=900)
    assert outcome.state == "success", outcome.task_states
    assert set(outcome.task_states.values()) == {"success"}

    published = airflow_client.xcom(DAG, run_id, "publish_clicks")
    assert '"rows": 4208' in json.dumps(published)

    assert len(table_rows(spark, settings, "raw_clicks")) == 4208
    click_files = sorted(SAMPLE.glob("clicks_hour_*.csv"))
    assert aggregates(spark, settings) == expected_tables(click_files, SAMPLE / "articles_metadata.csv")


def partition_location(spark: SparkSession, settings: Settings, table: str, dt: str, hour: int) -> str:
    rows = spark.sql(
        f"DESCRIBE FORMATTED `{settings.hive_database}`.`{table}` PARTITION (dt='{dt}', hour={hour})"
    ).collect()
    return next(str(row.data_type) for row in rows if row.col_name == "Location")


def backfill(settings: Settings, airflow_client: AirflowClient, first: str, last: str) -> None:
    """`airflow backfill create` over [first, last] (inclusive), waited for until it completes."""
    env = {**os.environ, **Airflow(settings).environment()}
    airflow = str(Path(sys.executable).parent / "airflow")
    created = subprocess.run(
        [
            airflow,
            "backfill",
            "create",
            "--dag-id",
            "clickstream_hourly",
            "--from-date",
            first,
            "--to-date",
            last,
            "--reprocess-behavior",
            "completed",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert created.returncode == 0, created.stdout[-2000:] + created.stderr[-3000:]
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        backfills = airflow_client.call("GET", f"/api/v2/backfills?dag_id={DAG}")["backfills"]
        if backfills and all(b["completed_at"] for b in backfills):
            return
        time.sleep(5)
    raise AssertionError("the backfill did not complete within 15 minutes")


def test_backfill_of_two_hours_run_twice_gives_identical_partitions_and_publishes_nothing(
    kafka: Service, metastore: Service, airflow_client: AirflowClient, settings: Settings, spark: SparkSession
) -> None:
    hours = {("2017-10-01", 2), ("2017-10-01", 3)}
    before = partition_location(spark, settings, "article_hourly", "2017-10-01", 3)

    backfill(settings, airflow_client, "2017-10-01T02:00:00+00:00", "2017-10-01T03:00:00+00:00")
    first_location = partition_location(spark, settings, "article_hourly", "2017-10-01", 3)
    once = aggregates(spark, settings, hours)
    backfill(settings, airflow_client, "2017-10-01T02:00:00+00:00", "2017-10-01T03:00:00+00:00")
    twice = aggregates(spark, settings, hours)

    assert before != first_location  # the backfill really rewrote the hour
    assert once == twice
    expected = expected_tables(sorted(SAMPLE.glob("clicks_hour_*.csv")), SAMPLE / "articles_metadata.csv")
    assert once["article_hourly"] == {row for row in expected["article_hourly"] if (row[-2], row[-1]) in hours}
    assert len(table_rows(spark, settings, "raw_clicks")) == 4208  # nothing published again

    runs = airflow_client.call("GET", f"/api/v2/dags/{DAG}/dagRuns?run_type=backfill")["dag_runs"]
    assert {run["state"] for run in runs} == {"success"} and len(runs) == 2
    for run in runs:
        assert '"rows": 0' in json.dumps(airflow_client.xcom(DAG, run["dag_run_id"], "publish_clicks"))
