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

from app.runtime.services import Airflow, Service
from app.settings import REPO_ROOT, Settings
from tests.integration.expected import expected_tables
from tests.integration.test_airflow import login
from tests.integration.test_spark_jobs import aggregates, table_rows

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

SAMPLE = REPO_ROOT / "app" / "data"


def api(
    settings: Settings, token: str, method: str, path: str, body: dict[str, object] | None = None
) -> tuple[int, dict]:  # type: ignore[type-arg]
    import urllib.error
    import urllib.request

    data = json.dumps(body).encode() if body is not None else None
    call = urllib.request.Request(  # noqa: S310 - our own loopback URL
        f"{settings.airflow_url}{path}",
        data=data,
        method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(call, timeout=30) as reply:  # noqa: S310 - our own loopback URL
            return reply.status, json.loads(reply.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def test_hourly_dag_run_over_the_sample(
    kafka: Service, metastore: Service, airflow: Service, settings: Settings, spark: SparkSession, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for path in SAMPLE.glob("*.csv"):
        shutil.copy(path, data / path.name)
    token = json.loads(login(settings, settings.airflow_admin_password)[1])["access_token"]

    deadline = time.monotonic() + 180
    while api(settings, token, "GET", "/api/v2/dags/clickstream_hourly")[0] != 200:
        assert time.monotonic() < deadline, "the DAG was not parsed within 180 s"
        time.sleep(3)
    assert api(settings, token, "PATCH", "/api/v2/dags/clickstream_hourly", {"is_paused": False})[0] == 200

    bad_status, _ = api(
        settings,
        token,
        "POST",
        "/api/v2/dags/clickstream_hourly/dagRuns",
        {"logical_date": None, "conf": {"recompute_from": "yesterday"}},
    )
    assert bad_status in (400, 422)  # the parameter's pattern refuses it before any run starts

    status, run = api(
        settings,
        token,
        "POST",
        "/api/v2/dags/clickstream_hourly/dagRuns",
        {
            "logical_date": None,
            "conf": {"data_dir": str(data), "recompute_from": "2017-10-01T00", "recompute_to": "2017-10-01T23"},
        },
    )
    assert status == 200, run
    run_id = run["dag_run_id"]
    deadline = time.monotonic() + 900
    state = "queued"
    while state not in ("success", "failed") and time.monotonic() < deadline:
        time.sleep(5)
        state = api(settings, token, "GET", f"/api/v2/dags/clickstream_hourly/dagRuns/{run_id}")[1]["state"]
    tasks = api(settings, token, "GET", f"/api/v2/dags/clickstream_hourly/dagRuns/{run_id}/taskInstances")[1]
    states = {task["task_id"]: task["state"] for task in tasks["task_instances"]}
    assert state == "success", states
    assert set(states.values()) == {"success"}

    published = api(
        settings,
        token,
        "GET",
        f"/api/v2/dags/clickstream_hourly/dagRuns/{run_id}/taskInstances/publish_clicks/xcomEntries/return_value",
    )
    assert published[0] == 200 and '"rows": 4208' in json.dumps(published[1].get("value", published[1]))

    assert len(table_rows(spark, settings, "raw_clicks")) == 4208
    click_files = sorted(SAMPLE.glob("clicks_hour_*.csv"))
    assert aggregates(spark, settings) == expected_tables(click_files, SAMPLE / "articles_metadata.csv")


def partition_location(spark: SparkSession, settings: Settings, table: str, dt: str, hour: int) -> str:
    rows = spark.sql(
        f"DESCRIBE FORMATTED `{settings.hive_database}`.`{table}` PARTITION (dt='{dt}', hour={hour})"
    ).collect()
    return next(str(row.data_type) for row in rows if row.col_name == "Location")


def backfill(settings: Settings, token: str, first: str, last: str) -> None:
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
        backfills = api(settings, token, "GET", "/api/v2/backfills?dag_id=clickstream_hourly")[1]["backfills"]
        if backfills and all(b["completed_at"] for b in backfills):
            return
        time.sleep(5)
    raise AssertionError("the backfill did not complete within 15 minutes")


def test_backfill_of_two_hours_run_twice_gives_identical_partitions_and_publishes_nothing(
    kafka: Service, metastore: Service, airflow: Service, settings: Settings, spark: SparkSession
) -> None:
    token = json.loads(login(settings, settings.airflow_admin_password)[1])["access_token"]
    hours = {("2017-10-01", 2), ("2017-10-01", 3)}
    before = partition_location(spark, settings, "article_hourly", "2017-10-01", 3)

    backfill(settings, token, "2017-10-01T02:00:00+00:00", "2017-10-01T03:00:00+00:00")
    first_location = partition_location(spark, settings, "article_hourly", "2017-10-01", 3)
    once = aggregates(spark, settings, hours)
    backfill(settings, token, "2017-10-01T02:00:00+00:00", "2017-10-01T03:00:00+00:00")
    twice = aggregates(spark, settings, hours)

    assert before != first_location  # the backfill really rewrote the hour
    assert once == twice
    expected = expected_tables(sorted(SAMPLE.glob("clicks_hour_*.csv")), SAMPLE / "articles_metadata.csv")
    assert once["article_hourly"] == {row for row in expected["article_hourly"] if (row[-2], row[-1]) in hours}
    assert len(table_rows(spark, settings, "raw_clicks")) == 4208  # nothing published again

    runs = api(settings, token, "GET", "/api/v2/dags/clickstream_hourly/dagRuns?run_type=backfill")[1]["dag_runs"]
    assert {run["state"] for run in runs} == {"success"} and len(runs) == 2
    for run in runs:
        status, entry = api(
            settings,
            token,
            "GET",
            f"/api/v2/dags/clickstream_hourly/dagRuns/{run['dag_run_id']}"
            "/taskInstances/publish_clicks/xcomEntries/return_value",
        )
        assert status == 200 and '"rows": 0' in json.dumps(entry.get("value", entry))
