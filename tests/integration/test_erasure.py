"""`make forget`, as the README prints it (`spark_jobs/forget_users.py` without Airflow): bad ids are
refused and change nothing; then the user's raw clicks are gone, every table built from them
(the day already built too, by the job itself) equals a computation from the remaining clicks, the
hours still reconcile, and the request is recorded without the user's id. The path through
Airflow, with replays of the original files, is test_forget_dag.py."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from app.erasure import erasure_key, user_hash
from app.hours import Hour, hour_key
from app.producer.publisher import publish
from app.reconciliation import COUNTS_AS_BALANCED, ReconciliationTable
from app.runtime.service import Service
from app.settings import REPO_ROOT, Settings
from app.table_checks import check_tables
from tests.integration.expected import daily_tables, expected_tables
from tests.integration.jobs import CLICK_FILES, SAMPLE, aggregates, run_job, sample_pipeline, table_rows
from tests.integration.test_daily import daily_rows

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

USER = 64  # in the sample: clicks in four hours of 2017-10-01
DAYS = ("2017-10-01",)


def without_user(files: list[Path], folder: Path) -> list[Path]:
    """The click files with the user's rows left out: what the tables must equal afterwards."""
    folder.mkdir()
    kept = []
    for file in files:
        frame = pd.read_csv(file)
        frame[frame["user_id"] != USER].to_csv(folder / file.name, index=False)
        kept.append(folder / file.name)
    return kept


def readme_command() -> list[str]:
    """The command the README prints under *Forgetting a user*, as printed."""
    block = re.search(r"## Forgetting a user.*?```sh\n(.*?)```", (REPO_ROOT / "README.md").read_text(), re.S)
    assert block, "the README has no command under 'Forgetting a user'"
    return shlex.split(block.group(1).strip())


def forget(settings: Settings, command: list[str]) -> subprocess.CompletedProcess[str]:
    """`make forget USER=...` with the test pipeline's settings: its exit code and output."""
    return subprocess.run(
        command,
        cwd=REPO_ROOT,
        env={**os.environ, **settings.environment()},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def reconciled_states(settings: Settings, hours: list[Hour]) -> dict[str, str]:
    report = check_tables(settings, hours)
    assert report.problems == [], report.problems
    return {hour_key(hour): report.states[hour] for hour in hours}


def test_make_forget_refuses_bad_ids_then_forgets_the_user_in_every_table(
    kafka: Service, metastore: Service, settings: Settings, spark: SparkSession, tmp_path: Path
) -> None:
    own = sample_pipeline(settings, tmp_path / "pipeline")
    files = CLICK_FILES
    log = tmp_path / "jobs.log"
    publish(own)
    run_job(own, "streaming_job.py", "--trigger", "available-now", log=log)
    run_job(own, "build_days.py", "--day", DAYS[0], log=log)
    raw_before = table_rows(spark, own, "raw_clicks")
    theirs = [row for row in raw_before if row.user_id == USER]
    # the index the erasure reads instead of raw_clicks names every user's every hour (appended with the clicks)
    assert user_hours_of(table_rows(spark, own, "user_hours")) == user_hours_of(raw_before)
    hours = sorted({(row.dt, row.hour) for row in theirs})
    assert len(hours) >= 3 and {day for day, _ in hours} == set(DAYS)
    all_hours = sorted({(row.dt, row.hour) for row in raw_before})
    assert set(reconciled_states(own, all_hours).values()) <= set(COUNTS_AS_BALANCED)

    # refused before anything changes: an id without clicks, an empty id, a malformed id
    command = readme_command()
    assert command == ["make", "forget", f"USER={USER}"]
    for user, message in (
        ("999999999", "no clicks of user(s) [999999999]"),
        ("", "an empty user id"),
        (f"{USER};1", f"user id '{USER};1' is not a whole number"),  # and no shell runs `1`
    ):
        refused = forget(own, [*command[:-1], f"USER={user}"])
        assert refused.returncode != 0 and message in refused.stdout + refused.stderr, refused.stderr[-3000:]
    assert table_rows(spark, own, "erasures") == [] and len(table_rows(spark, own, "raw_clicks")) == len(raw_before)

    done = forget(own, command)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert f"{len(theirs)} raw click(s) removed from {len(hours)} hour(s)" in done.stdout
    assert "hours reconciled: yes" in done.stdout
    assert "built the user_hours index" not in done.stdout + done.stderr  # it was there: raw_clicks not scanned

    raw_after = table_rows(spark, own, "raw_clicks")
    assert [row for row in raw_after if row.user_id == USER] == []
    others = sorted(tuple(row) for row in raw_before if row.user_id != USER)
    assert sorted(tuple(row) for row in raw_after) == others  # every other row as it was
    remaining = without_user(files, tmp_path / "remaining")
    articles = SAMPLE / "articles_metadata.csv"
    assert aggregates(spark, own) == expected_tables(remaining, articles)
    expected_days = daily_tables(remaining, articles)
    for table in ("article_daily", "category_daily", "day_summary"):  # the day built (not the next two)
        assert daily_rows(spark, own, table) == {row for row in expected_days[table] if row[-1] in DAYS}, table

    (request,) = table_rows(spark, own, "erasures")
    assert request.user_hash == user_hash(erasure_key(own), USER)
    assert uuid.UUID(request.erasure_id).version == 4  # random: it carries nothing of the user
    assert request.raw_rows_removed == len(theirs) and request.done_at is not None
    assert request.hours.split(",") == [hour_key(hour) for hour in hours] and request.days == ",".join(DAYS)
    erased = table_rows(spark, own, "erased_clicks")
    assert "user_id" not in erased[0].asDict() and len(erased) == len(theirs)
    states = reconciled_states(own, all_hours)
    assert set(states.values()) <= set(COUNTS_AS_BALANCED), states
    rows = ReconciliationTable(own).read(DAYS)
    assert sum(rows[hour]["erased"] for hour in hours) == len(theirs)
    assert user_hours_of(table_rows(spark, own, "user_hours")) == user_hours_of(raw_after)  # the user left it too
    forgets_in_a_database_older_than_the_index(own, spark, raw_after)


def forgets_in_a_database_older_than_the_index(own: Settings, spark: SparkSession, raw_before: list[Any]) -> None:
    """A database whose tables predate `user_hours` (no marker, no index rows): the first erasure
    builds the index from every raw click, once, then finds the user's hours in it (in this
    process's Spark: no second job to start)."""
    from spark_jobs.erasure import forget_users
    from spark_jobs.pipeline import Pipeline
    from spark_jobs.tables import SINCE_FIRST_CLICK, TableStore

    store = TableStore(spark, own)
    assert store.indexes_every_click()  # created with the other tables, before the first click
    (store.tables["user_hours"].root / SINCE_FIRST_CLICK).unlink()
    store.empty_partitions("user_hours", store.metastore.partition_names("user_hours"))
    hours_of: dict[int, set[Hour]] = {}
    for row in raw_before:
        hours_of.setdefault(row.user_id, set()).add((row.dt, row.hour))
    user = min(hours_of, key=lambda candidate: (-len(hours_of[candidate]), candidate))

    report = forget_users(Pipeline(store, own), [user], build_days=False)
    assert report.hours == sorted(hours_of[user])
    assert report.rows_removed == {user: sum(row.user_id == user for row in raw_before)}
    assert store.indexes_every_click()
    raw_after = table_rows(spark, own, "raw_clicks")
    assert user_hours_of(table_rows(spark, own, "user_hours")) == user_hours_of(raw_after) != set()


def user_hours_of(rows: list[Any]) -> set[tuple[int, str, int]]:
    return {(row.user_id, row.dt, row.hour) for row in rows}
