"""clickstream_forget through the real Airflow: a user with clicks in three hours over two built
days is forgotten; their raw rows are gone and every other row is as it was; the touched hours'
aggregates and the two days equal a computation from the remaining clicks (the days rebuilt by
clickstream_daily, announced by the forget run); the hours reconcile; a bad id is refused; and
the original files published again as new versions land none of the user's clicks."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import pytest

from app.airflow.client import AirflowClient
from app.erasure import erasure_key, user_hash
from app.hours import Hour, hour_key
from app.producer.publisher import PublishOptions, publish
from app.reconciliation import COUNTS_AS_BALANCED, ReconciliationTable
from app.settings import Settings
from tests.integration.expected import daily_tables, expected_tables
from tests.integration.jobs import SAMPLE, aggregates, clicks_of_a_day, table_rows
from tests.integration.test_daily import daily_rows
from tests.integration.test_daily_dag import DAILY, HOURLY, daily_runs_become, task_log

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

pytestmark = pytest.mark.usefixtures("kafka", "postgres", "metastore")

FORGET = "clickstream_forget"
DAYS = ("2019-07-20", "2019-07-21")  # far from every other test's days
USER = 9_100_000_001  # no other test's user
HOURS: list[Hour] = [(DAYS[0], 22), (DAYS[0], 23), (DAYS[1], 0)]


def the_users_clicks(data: Path) -> int:
    """Two clicks of each of `HOURS` become the user's, each click a session of its own."""
    moved = 0
    for day, hour in HOURS:
        path = data / f"clicks_hour_{day.replace('-', '')}_{hour:02d}.csv"
        frame = pd.read_csv(path)
        rows = frame.index[:2]
        frame.loc[rows, "user_id"] = USER
        frame.loc[rows, "session_id"] = [USER * 10 + moved + n for n in range(len(rows))]
        frame.loc[rows, "session_start"] = frame.loc[rows, "click_timestamp"]
        frame.to_csv(path, index=False)
        moved += len(rows)
    return moved


def run(client: AirflowClient, dag: str, conf: dict[str, object], state: str = "success") -> str:
    run_id = client.trigger(dag, conf)
    outcome = client.wait_for_run(dag, run_id, timeout=900)
    assert outcome.state == state, outcome.task_states
    return run_id


def test_a_user_forgotten_through_airflow_is_gone_everywhere_and_stays_gone(
    airflow_client: AirflowClient, settings: Settings, spark: SparkSession, data_dir: Path, tmp_path: Path
) -> None:
    data = data_dir
    shutil.copy(SAMPLE / "articles_metadata.csv", data)
    for day in DAYS:
        clicks_of_a_day(data, day, list(range(24)), per_hour=10)
    theirs = the_users_clicks(data)
    files = sorted(data.glob("clicks_hour_*.csv"))
    for dag in (HOURLY, DAILY, FORGET):
        airflow_client.wait_for_dag(dag)
        airflow_client.unpause(dag)
    try:
        run(airflow_client, HOURLY, {"data_dir": str(data)})
        for day in DAYS:
            daily_runs_become(airflow_client, 1, 600, day)
        raw_before = [row for row in table_rows(spark, settings, "raw_clicks") if row.dt in DAYS]
        assert sum(row.user_id == USER for row in raw_before) == theirs

        # a bad id is refused in the trigger's first task, naming it (`make forget` is tested with
        # every kind of bad id in test_erasure.py, and forget_arguments by the unit tests)
        refused = run(airflow_client, FORGET, {"users": "12x"}, state="failed")
        assert "users: user id '12x' is not a whole number" in task_log(settings, FORGET, refused, "users_to_forget")

        forgotten = run(airflow_client, FORGET, {"users": str(USER)})
        # (and any hour or day another test changed since its last check)
        assert {hour_key(h) for h in HOURS} <= set(airflow_client.xcom(FORGET, forgotten, "announce_landed_hours"))
        assert set(DAYS) <= set(airflow_client.xcom(FORGET, forgotten, "announce_recomputed_days"))
        for day in DAYS:
            daily_runs_become(airflow_client, 2, 600, day)  # rebuilt by clickstream_daily

        raw_after = [row for row in table_rows(spark, settings, "raw_clicks") if row.dt in DAYS]
        assert [row for row in raw_after if row.user_id == USER] == []
        assert sorted(map(tuple, raw_after)) == sorted(tuple(row) for row in raw_before if row.user_id != USER)
        remaining = tmp_path / "remaining"
        remaining.mkdir()
        for file in files:
            frame = pd.read_csv(file)
            frame[frame["user_id"] != USER].to_csv(remaining / file.name, index=False)
        kept = sorted(remaining.glob("clicks_hour_*.csv"))
        articles = SAMPLE / "articles_metadata.csv"
        expected = {
            table: {row for row in rows if (row[-2], row[-1]) in set(HOURS)}
            for table, rows in expected_tables(kept, articles).items()
        }
        assert aggregates(spark, settings, set(HOURS)) == expected
        expected_days = daily_tables(kept, articles)
        for table in ("article_daily", "category_daily", "day_summary"):
            assert {row for row in daily_rows(spark, settings, table) if row[-1] in DAYS} == expected_days[table]

        (request,) = [
            row
            for row in table_rows(spark, settings, "erasures")
            if row.user_hash == user_hash(erasure_key(settings), USER)
        ]
        assert request.raw_rows_removed == theirs and request.hours == ",".join(hour_key(h) for h in HOURS)
        rows = ReconciliationTable(settings).read(DAYS)
        assert {rows[hour]["state"] for hour in HOURS} <= set(COUNTS_AS_BALANCED)
        assert sum(rows[hour]["erased"] for hour in HOURS) == theirs

        # the original files again, published as new versions (rows in another order: an unchanged
        # file is skipped) with `make publish ARGS="--new-version ..."`'s code, drained by an hourly run
        for file in files:
            pd.read_csv(file).iloc[::-1].to_csv(file, index=False)
        here = replace(settings, producer_data_root_directory=data, producer_file_stable_seconds=0.0)
        publish(here, PublishOptions(new_versions={file.name for file in files}))
        run(airflow_client, HOURLY, {"data_dir": str(data)})
        replayed = [row for row in table_rows(spark, settings, "raw_clicks") if row.dt in DAYS]
        assert [row for row in replayed if row.user_id == USER] == []
        assert len(replayed) == 2 * len(raw_after)
        rows = ReconciliationTable(settings).read(DAYS)
        assert {rows[hour]["state"] for hour in HOURS} <= set(COUNTS_AS_BALANCED)
        # the hours reconcile the files' new versions: their clicks, less the user's, refused
        assert sum(rows[hour]["erased"] for hour in HOURS) == theirs
    finally:
        for dag in (HOURLY, DAILY, FORGET):
            airflow_client.pause(dag)
