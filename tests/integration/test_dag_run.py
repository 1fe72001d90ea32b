"""clickstream_hourly through the real Airflow: triggered with parameters, it publishes, drains
and recomputes, and its Hive partitions equal the independent computation from the CSVs."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pytest

from app.airflow.client import AirflowClient
from app.checkpoint import running_stream
from app.hours import hour_key, parse_hour_key, partition_hour, quiet_hours
from app.metastore import Metastore
from app.reconciliation import ReconciliationTable
from app.runtime.airflow_server import Airflow
from app.runtime.local import LocalRuntime
from app.runtime.postgres import PostgresServer
from app.runtime.process import process_group_alive
from app.runtime.service import Service
from app.settings import REPO_ROOT, Settings
from tests.integration.conftest import ALERT_SECRET, AlertReceiver, admin_client
from tests.integration.expected import expected_tables, load_clicks
from tests.integration.jobs import aggregates, shifted_copy, table_rows

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

# the services every test here runs on (the Airflow fixtures start Airflow itself)
pytestmark = pytest.mark.usefixtures("kafka", "postgres", "metastore")

SAMPLE = REPO_ROOT / "app" / "data"
DAG = "clickstream_hourly"
STREAMING_DAG = "clickstream_streaming"


SAMPLE_CLICK_FILES = sorted(SAMPLE.glob("clicks_hour_*.csv"))


def sample_click_hours() -> set[tuple[str, int]]:
    """The hours the sample's clicks fall in: no other test lands clicks there (theirs are moved by
    whole days), so what the tables hold in these hours is the sample's alone."""
    clicks = load_clicks(SAMPLE_CLICK_FILES)
    return {(dt, int(hour)) for dt, hour in clicks[["dt", "hour"]].itertuples(index=False)}


def sample_raw_rows(spark: SparkSession, settings: Settings) -> int:
    hours = sample_click_hours()
    return sum((row.dt, row.hour) in hours for row in table_rows(spark, settings, "raw_clicks"))


def sample_aggregates(spark: SparkSession, settings: Settings) -> tuple[dict[str, set[Any]], dict[str, set[Any]]]:
    """(what the aggregates hold, what they should hold) in the hours of the sample's rows."""
    expected = expected_tables(SAMPLE_CLICK_FILES, SAMPLE / "articles_metadata.csv")
    hours = {(row[-2], row[-1]) for rows in expected.values() for row in rows}
    return aggregates(spark, settings, hours), expected


@pytest.fixture(scope="module")
def sample_run(
    kafka: Service, metastore: Service, airflow: Service, settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> str:
    """An hourly run over a copy of the sample, with the hours of 2017-10-01 asked to be recomputed
    too: once for the tests of this file that need the sample in the tables, whichever runs first."""
    client = admin_client(settings)
    data = tmp_path_factory.mktemp("sample")
    for path in SAMPLE.glob("*.csv"):
        shutil.copy(path, data / path.name)
    client.wait_for_dag(DAG)
    client.unpause(DAG)
    run_id = client.trigger(
        DAG, {"data_dir": str(data), "recompute_from": "2017-10-01T00", "recompute_to": "2017-10-01T23"}
    )
    client.wait_for_run(DAG, run_id, timeout=900)
    return run_id


def test_hourly_dag_run_over_the_sample(
    sample_run: str, airflow_client: AirflowClient, settings: Settings, spark: SparkSession
) -> None:
    bad_status, _ = airflow_client.request(
        "POST", f"/api/v2/dags/{DAG}/dagRuns", {"logical_date": None, "conf": {"recompute_from": "yesterday"}}
    )
    assert bad_status in (400, 422)  # the parameter's pattern refuses it before any run starts

    outcome = airflow_client.wait_for_run(DAG, sample_run, timeout=60)
    assert outcome.state == "success", outcome.task_states
    # every task succeeded; no day of the sample was complete before, so no day is announced again
    states = dict(outcome.task_states)
    assert states.pop("announce_recomputed_days") == "skipped"
    assert set(states.values()) == {"success"}
    # the hours asked (an empty one counts) and every other hour the drain landed, each checked once
    clicked = {f"{dt}T{hour:02d}" for dt, hour in sample_click_hours()}
    asked = {f"2017-10-01T{hour:02d}" for hour in range(24)}
    quiet = {hour_key(hour) for hour in quiet_hours(sample_click_hours(), settings.quiet_gap_max_hours)}
    assert "2017-10-02T12" in quiet  # the sample has clicks on 2017-10-02 until 02:00, then from 2017-10-03T01
    landed = set(airflow_client.xcom(DAG, sample_run, "announce_landed_hours"))
    assert asked | clicked | quiet <= landed
    # anything more is a quiet gap between the sample's clicks and another test's, checked empty
    rows = ReconciliationTable(settings).read({hour[:10] for hour in landed})
    assert {rows[parse_hour_key(hour)]["state"] for hour in landed - asked - clicked} <= {"empty"}
    assert {rows[parse_hour_key(hour)]["state"] for hour in quiet - asked} == {"empty"}

    published = airflow_client.xcom(DAG, sample_run, "publish_clicks")
    assert '"rows": 4208' in json.dumps(published)

    assert sample_raw_rows(spark, settings) == 4208
    got, expected = sample_aggregates(spark, settings)
    assert got == expected


def readme_backfill_command() -> str:
    """The backfill command the README prints, as printed (a `make airflow` line)."""
    block = re.search(r"\*\*Backfills, per hour\.\*\*.*?```sh\n(.*?)```", (REPO_ROOT / "README.md").read_text(), re.S)
    assert block, "the README has no backfill command under 'Backfills, per hour'"
    command = block.group(1).strip()
    assert command.startswith('make airflow ARGS="backfill create --dag-id clickstream_hourly'), command
    return command


def backfill(settings: Settings, airflow_client: AirflowClient, command: str) -> None:
    """A backfill created by `command` (a shell line run in the checkout with the run's settings),
    waited for until it completes."""
    env = {**os.environ, **settings.environment()}
    created = subprocess.run(
        ["bash", "-c", command], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert created.returncode == 0, created.stdout[-2000:] + created.stderr[-3000:]
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        backfills = airflow_client.call("GET", f"/api/v2/backfills?dag_id={DAG}")["backfills"]
        if backfills and all(b["completed_at"] for b in backfills):
            return
        time.sleep(5)
    raise AssertionError("the backfill did not complete within 15 minutes")


@pytest.mark.usefixtures("sample_run")
def test_a_backfill_of_six_hours_recomputes_exactly_those_hours_identically_and_publishes_nothing(
    airflow_client: AirflowClient, settings: Settings, spark: SparkSession
) -> None:
    """The README's command, as printed, over hours 00 to 05 of the sample's first day: one run per
    hour, each recomputing its own hour (its data interval), the hours' aggregates the same as the
    sample's run computed them, every other hour untouched, nothing published again."""
    hours = {("2017-10-01", hour) for hour in range(6)}
    raw_before = len(table_rows(spark, settings, "raw_clicks"))
    metastore = Metastore(settings.hive_metastore_uri, settings.hive_database)
    before = {partition_hour(name): where for name, where in metastore.partition_locations("article_hourly").items()}
    once = aggregates(spark, settings, hours)

    command = readme_backfill_command()
    assert "--from-date 2017-10-01T00:00:00 --to-date 2017-10-01T05:00:00" in command
    backfill(settings, airflow_client, command)

    after = {partition_hour(name): where for name, where in metastore.partition_locations("article_hourly").items()}
    moved = {hour for hour in before if after.get(hour) != before[hour]}
    assert moved == hours & set(before) and moved, moved  # the hours with clicks among the six, and no other
    again = aggregates(spark, settings, hours)
    assert again == once
    expected = expected_tables(SAMPLE_CLICK_FILES, SAMPLE / "articles_metadata.csv")
    assert again["article_hourly"] == {row for row in expected["article_hourly"] if (row[-2], row[-1]) in hours}
    assert len(table_rows(spark, settings, "raw_clicks")) == raw_before  # nothing published again
    assert sample_raw_rows(spark, settings) == 4208

    runs = airflow_client.call("GET", f"/api/v2/dags/{DAG}/dagRuns?run_type=backfill")["dag_runs"]
    assert {run["state"] for run in runs} == {"success"} and len(runs) == 6
    recomputed = sorted(airflow_client.xcom(DAG, run["dag_run_id"], "hours_to_recompute")[1] for run in runs)
    assert recomputed == [f"2017-10-01T{hour:02d}" for hour in range(6)]  # each run its own hour
    for run in runs:
        assert '"rows": 0' in json.dumps(airflow_client.xcom(DAG, run["dag_run_id"], "publish_clicks"))


def test_streaming_dag_runs_beside_the_hourly_dag_which_waits_for_it(
    airflow_client: AirflowClient,
    settings: Settings,
    spark: SparkSession,
    data_dir: Path,
) -> None:
    raw_before = raw_rows_so_far(spark, settings)
    airflow_client.wait_for_dag(STREAMING_DAG)
    airflow_client.unpause(STREAMING_DAG)
    runs: list[str] = []  # the streaming runs, the waiting one first
    try:
        stream_run = airflow_client.trigger(STREAMING_DAG)
        runs.append(stream_run)
        deadline = time.monotonic() + 240
        while (holder := running_stream(settings)) is None:
            state = airflow_client.run_state(STREAMING_DAG, stream_run)
            assert state not in ("success", "failed"), airflow_client.task_states(STREAMING_DAG, stream_run)
            assert time.monotonic() < deadline, "the streaming job did not start within 240 s"
            time.sleep(2)
        assert holder["trigger"] == "processing-time"
        second_run = airflow_client.trigger(STREAMING_DAG)
        runs.insert(0, second_run)
        time.sleep(10)
        assert airflow_client.run_state(STREAMING_DAG, second_run) == "queued"  # max_active_runs=1

        new_file = data_dir / "clicks_hour_900.csv"
        shifted_copy(SAMPLE / "clicks_hour_001.csv", new_file, days=40)
        os.utime(new_file, (time.time() - 3600, time.time() - 3600))
        hourly_run = airflow_client.trigger(DAG, {"data_dir": str(data_dir)})
        outcome = airflow_client.wait_for_run(DAG, hourly_run, timeout=600)
        assert outcome.state == "success", outcome.task_states
        assert airflow_client.xcom(DAG, hourly_run, "drain_topics") == {"drained_by": "running stream"}
        assert outcome.task_states["recompute_hours"] == "skipped"  # a manual run without hours
        assert outcome.task_states["check_tables"] == "success"
        new_rows = len(pd.read_csv(new_file))
        assert len(table_rows(spark, settings, "raw_clicks")) == raw_before + new_rows
        new_hours = {
            (row[-2], row[-1])
            for row in expected_tables([new_file], SAMPLE / "articles_metadata.csv")["article_hourly"]
        }
        assert (
            aggregates(spark, settings, new_hours)["article_hourly"]
            == expected_tables([new_file], SAMPLE / "articles_metadata.csv")["article_hourly"]
        )

        # stopping the runs from the UI (mark them failed; the waiting one first, so it never starts)
        # stops the job and frees the checkpoint
        stop_streaming_runs(airflow_client, settings, runs)
    finally:  # a failure above must not leave the stream holding the checkpoint for the next tests
        if running_stream(settings) is not None:
            stop_streaming_runs(airflow_client, settings, runs)
        airflow_client.call("PATCH", f"/api/v2/dags/{STREAMING_DAG}", {"is_paused": True})


def stop_streaming_runs(airflow_client: AirflowClient, settings: Settings, runs: list[str]) -> None:
    """Mark the runs failed as the UI does; the streaming job must stop and free the checkpoint."""
    for run_id in runs:
        status, reply = airflow_client.request(
            "PATCH", f"/api/v2/dags/{STREAMING_DAG}/dagRuns/{run_id}", {"state": "failed"}
        )
        assert status == 200, reply
    deadline = time.monotonic() + 120
    while running_stream(settings) is not None:
        assert time.monotonic() < deadline, (
            "the streaming job still holds the checkpoint 120 s after the run was stopped"
        )
        time.sleep(2)


def task_log(settings: Settings, run_id: str, task_id: str) -> str:
    """A task's log, every attempt, as Airflow wrote it."""
    folder = settings.logs_dir / "airflow" / f"dag_id={DAG}" / f"run_id={run_id}" / f"task_id={task_id}"
    return "\n".join(path.read_text(errors="replace") for path in sorted(folder.glob("attempt=*.log")))


def raw_rows_so_far(spark: SparkSession, settings: Settings) -> int:
    """Rows of raw_clicks, 0 before the first run created the table."""
    from pyspark.errors import AnalysisException

    try:
        return len(table_rows(spark, settings, "raw_clicks"))
    except AnalysisException:
        return 0


def crash_mid_drain_then_check_exact(
    crash: Callable[[], None],
    new_file: Path,
    sample_file: str,
    days: int,
    airflow_client: AirflowClient,
    settings: Settings,
    spark: SparkSession,
) -> None:
    """An hourly run over `new_file` (a copy of a sample file `days` later, beside the catalogue) that
    `crash` interrupts while its drain is inside Spark: the run still succeeds, and the file's rows
    are in the raw table once and in its hours' aggregates exactly."""
    raw_before = raw_rows_so_far(spark, settings)
    data = new_file.parent
    data.mkdir()
    shifted_copy(SAMPLE / sample_file, new_file, days=days)
    shutil.copy(SAMPLE / "articles_metadata.csv", data)  # already published when the first test ran
    for path in data.iterdir():
        os.utime(path, (time.time() - 3600, time.time() - 3600))
    airflow_client.wait_for_dag(DAG)
    airflow_client.unpause(DAG)
    run_id = airflow_client.trigger(DAG, {"data_dir": str(data)})
    deadline = time.monotonic() + 300
    while airflow_client.task_states(DAG, run_id).get("drain_topics") != "running":
        assert time.monotonic() < deadline, airflow_client.task_states(DAG, run_id)
        time.sleep(1)
    time.sleep(5)  # inside the Spark job
    crash()

    outcome = airflow_client.wait_for_run(DAG, run_id, timeout=900)
    assert outcome.state == "success", outcome.task_states
    assert outcome.task_states["check_tables"] == "success"
    new_rows = len(pd.read_csv(new_file))
    assert len(table_rows(spark, settings, "raw_clicks")) == raw_before + new_rows
    expected = expected_tables([new_file], SAMPLE / "articles_metadata.csv")
    new_hours = {(row[-2], row[-1]) for row in expected["article_hourly"]}
    got = aggregates(spark, settings, new_hours)
    assert {table: got[table] for table in ("article_hourly", "category_hourly", "context_hourly")} == {
        table: expected[table] for table in ("article_hourly", "category_hourly", "context_hourly")
    }


def kill_process_group(pid: int | None) -> None:
    """SIGKILL to a whole process group, as a crashed host; returns once it is gone."""
    assert pid is not None
    os.killpg(pid, signal.SIGKILL)
    while process_group_alive(pid):
        time.sleep(0.2)


def test_scheduler_killed_during_a_run_and_restarted_the_run_completes_exactly(
    airflow_client: AirflowClient,
    settings: Settings,
    spark: SparkSession,
    tmp_path: Path,
) -> None:
    def kill_the_scheduler() -> None:
        # the scheduler, its executor's workers and the tasks they run, at once (as a crashed host)
        scheduler = next(process for process in Airflow(settings).processes() if process.name == "airflow-scheduler")
        kill_process_group(scheduler.read_pid())
        scheduler.start()

    new_file = tmp_path / "data" / "clicks_hour_950.csv"
    crash_mid_drain_then_check_exact(
        kill_the_scheduler, new_file, "clicks_hour_002.csv", 60, airflow_client, settings, spark
    )


def test_postgres_killed_during_a_run_and_restarted_the_run_completes_exactly(
    airflow_client: AirflowClient,
    settings: Settings,
    spark: SparkSession,
    tmp_path: Path,
) -> None:
    """PostgreSQL (Airflow's database and the metastore's) killed with SIGKILL while the drain
    runs, as a crashed database host; then `make up`'s start: the run completes, exactly once."""

    def kill_postgres() -> None:
        kill_process_group(PostgresServer(settings).processes()[0].read_pid())
        time.sleep(10)  # the scheduler, the api-server and the metastore find it gone
        # what `make up` does: start what is not running (PostgreSQL recovers from its log first)
        LocalRuntime(settings, ["postgres", "metastore", "airflow"]).up()

    new_file = tmp_path / "data" / "clicks_hour_951.csv"
    crash_mid_drain_then_check_exact(
        kill_postgres, new_file, "clicks_hour_000.csv", 90, airflow_client, settings, spark
    )
    assert "database system was not properly shut down" in (settings.logs_dir / "postgres.log").read_text()


def test_refused_files_hold_back_nothing_and_the_run_fails_in_refused_files_alone(
    airflow_client: AirflowClient,
    alerts: AlertReceiver,
    settings: Settings,
    spark: SparkSession,
    tmp_path: Path,
) -> None:
    """Good files beside a link out of the folder, a truncated .csv.gz, a header-less binary file and
    a published file that changed: the good rows land exactly once, the run fails in `refused_files`
    alone (naming all four, no task retried) and is announced by one webhook message, the sensor finds
    nothing new afterwards, and once the bad files are dealt with (the changed one published with
    --new-version) the next run is green, with no message."""
    import gzip
    from dataclasses import replace

    from app.airflow.tasks import pending_files
    from app.producer.ledger import read_ledger_state
    from app.producer.publisher import PublishOptions, publish

    raw_before = raw_rows_so_far(spark, settings)
    data, earlier = tmp_path / "data", tmp_path / "earlier"
    data.mkdir()
    earlier.mkdir()
    good = [data / "clicks_hour_960.csv", data / "clicks_hour_961.csv"]
    shifted_copy(SAMPLE / "clicks_hour_001.csv", good[0], days=120)
    shifted_copy(SAMPLE / "clicks_hour_002.csv", good[1], days=120)
    shutil.copy(SAMPLE / "articles_metadata.csv", data)
    changed = "clicks_hour_962.csv"
    shifted_copy(SAMPLE / "clicks_hour_000.csv", earlier / changed, days=121)
    then = publish(replace(settings, producer_data_root_directory=earlier, producer_file_stable_seconds=0.0))
    assert [file.status for file in then.files] == ["published"]  # as it was then
    shifted_copy(SAMPLE / "clicks_hour_000.csv", data / changed, days=122)  # and changed since
    (data / "clicks_hour_963.csv").symlink_to(SAMPLE / "README.md")
    whole = gzip.compress((SAMPLE / "clicks_hour_000.csv").read_bytes())
    (data / "clicks_hour_964.csv.gz").write_bytes(whole[: len(whole) // 2])
    (data / "clicks_hour_965.csv").write_bytes(bytes(range(256)) * 8)
    for path in data.iterdir():
        os.utime(path, (time.time() - 3600, time.time() - 3600), follow_symlinks=False)
    bad = ["clicks_hour_962.csv", "clicks_hour_963.csv", "clicks_hour_964.csv.gz", "clicks_hour_965.csv"]

    airflow_client.wait_for_dag(DAG)
    airflow_client.unpause(DAG)
    run_id = airflow_client.trigger(DAG, {"data_dir": str(data)})
    outcome = airflow_client.wait_for_run(DAG, run_id, timeout=900)
    assert outcome.state == "failed"
    # a manual run without hours skips its recompute (the drain recomputed what it landed)
    failed = {task: state for task, state in outcome.task_states.items() if state not in ("success", "skipped")}
    assert outcome.task_states["recompute_hours"] == "skipped"
    assert failed == {"refused_files": "failed"}, [task_log(settings, run_id, task)[-3000:] for task in failed]
    instances = airflow_client.call("GET", f"/api/v2/dags/{DAG}/dagRuns/{run_id}/taskInstances")["task_instances"]
    assert {ti["task_id"]: ti["try_number"] for ti in instances if ti["try_number"] != 1} == {}  # none retried
    log = task_log(settings, run_id, "refused_files")
    assert "4 file(s) refused" in log, log[-3000:]
    for name, fix in zip(bad, ("--new-version", "remove the link", "gzip -t", "fix its header"), strict=True):
        assert name in log and fix in log, (name, fix)
    deadline = time.monotonic() + 60
    while not alerts.for_run(run_id) and time.monotonic() < deadline:
        time.sleep(1)
    [alert] = alerts.for_run(run_id)  # one message for the one failure
    assert alert["path"] == f"/hooks/{ALERT_SECRET}" and alert["event"] == "task_failed"
    assert (alert["dag_id"], alert["task_id"], alert["try_number"]) == (DAG, "refused_files", 1)
    assert alert["reason"].startswith("4 file(s) refused") and all(name in alert["reason"] for name in bad)
    assert alert["url"] == f"{settings.airflow_url}/dags/{DAG}/runs/{urllib.parse.quote(run_id, safe='')}"
    secret = ALERT_SECRET.split("/")[-1]
    leaked = [
        path for path in settings.logs_dir.rglob("*") if path.is_file() and secret in path.read_text(errors="replace")
    ]
    assert leaked == []  # the webhook's secret part is in no log

    new_rows = sum(len(pd.read_csv(path)) for path in good) + len(pd.read_csv(earlier / changed))
    assert len(table_rows(spark, settings, "raw_clicks")) == raw_before + new_rows
    expected = expected_tables(good, SAMPLE / "articles_metadata.csv")
    hours = {(row[-2], row[-1]) for row in expected["article_hourly"]}
    got = aggregates(spark, settings, hours)
    for table in ("article_hourly", "category_hourly", "context_hourly"):
        assert got[table] == expected[table], table

    own = replace(settings, producer_data_root_directory=data)
    assert pending_files(own) == []  # the next scheduled run's sensor finds nothing new: it is skipped
    for name in bad[1:]:
        (data / name).unlink()
    publish(own, PublishOptions(new_versions=[changed]))
    assert read_ledger_state(own).refusals == {}  # published or removed: refused no more
    run_id = airflow_client.trigger(DAG, {"data_dir": str(data)})
    outcome = airflow_client.wait_for_run(DAG, run_id, timeout=900)
    assert outcome.state == "success", outcome.task_states
    assert alerts.for_run(run_id) == []  # no message for a success


def test_a_scheduled_run_is_skipped_by_its_sensor_when_only_refused_files_are_unchanged(
    airflow_client: AirflowClient, settings: Settings
) -> None:
    """A real scheduled run of the hourly DAG (the scheduler's, on the deployment's data folder) whose
    folder holds only files already refused: its sensor finds nothing new and the run is skipped
    (nothing published, no Spark job); a refused file that changes is new again."""
    from app.airflow.tasks import pending_files
    from app.producer.publisher import publish

    folder = settings.producer_data_root_directory
    airflow_client.wait_for_dag(DAG)
    airflow_client.unpause(DAG)  # the scheduler then creates the run of the latest hour
    scheduled = finished_scheduled_run(airflow_client)
    airflow_client.pause(DAG)  # no sensor of ours looks at the folder while it is set up
    link, binary = folder / "clicks_hour_970.csv", folder / "clicks_hour_971.csv"
    try:
        link.symlink_to(SAMPLE / "README.md")
        binary.write_bytes(bytes(range(256)) * 8)
        for path in (link, binary):  # written long ago: stable
            os.utime(path, (time.time() - 3600, time.time() - 3600), follow_symlinks=False)
        assert pending_files(settings) == [link.name, binary.name]  # never refused: new, a run names them
        refused = publish(settings)
        assert sorted(file.status for file in refused.files) == ["refused", "refused"]
        assert pending_files(settings) == []

        airflow_client.call("POST", f"/api/v2/dags/{DAG}/dagRuns/{scheduled}/clear", {"dry_run": False})
        airflow_client.unpause(DAG)
        outcome = airflow_client.wait_for_run(DAG, scheduled, timeout=300, poll=2)
        assert outcome.task_states["wait_for_new_files"] == "skipped", outcome.task_states
        assert set(outcome.task_states.values()) == {"skipped"}, outcome.task_states  # nothing ran

        binary.write_bytes(bytes(range(255, -1, -1)) * 8)  # changed: looked at again
        os.utime(binary, (time.time() - 60, time.time() - 60))
        assert pending_files(settings) == [binary.name]
    finally:
        link.unlink(missing_ok=True)
        binary.unlink(missing_ok=True)
        publish(settings)  # the refusals of files gone leave the ledger


def finished_scheduled_run(airflow_client: AirflowClient, timeout: float = 180) -> str:
    """The id of the scheduler's latest run of the hourly DAG, once it has finished."""
    deadline = time.monotonic() + timeout
    while True:
        runs = airflow_client.call(
            "GET", f"/api/v2/dags/{DAG}/dagRuns?run_type=scheduled&order_by=-logical_date&limit=5"
        )["dag_runs"]
        scheduled = [run for run in runs if run["run_type"] == "scheduled"]
        if scheduled and scheduled[0]["state"] in ("success", "failed"):
            return str(scheduled[0]["dag_run_id"])
        assert time.monotonic() < deadline, f"no finished scheduled run of {DAG} within {timeout:.0f} s: {runs}"
        time.sleep(2)
