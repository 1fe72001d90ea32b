"""DAG integrity: the DAG files import cleanly, have the expected tasks and order, and stay light."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from datetime import UTC, datetime

import pytest

from app.airflow.tasks import ParameterError, recompute_range
from app.settings import REPO_ROOT


@pytest.fixture(scope="module")
def dagbag():  # type: ignore[no-untyped-def]
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(REPO_ROOT / "dags"))


def test_dags_import_without_errors(dagbag) -> None:  # type: ignore[no-untyped-def]
    assert dagbag.import_errors == {}
    assert {"clickstream_hourly", "clickstream_streaming", "clickstream_daily", "clickstream_catch_up"} <= set(
        dagbag.dag_ids
    )


def test_a_scheduled_hourly_run_covers_the_hour_that_has_just_closed(dagbag) -> None:  # type: ignore[no-untyped-def]
    """As the scheduler computes it (the serialized timetable): the run at 11:00 has the data interval
    10:00-11:00, and that interval is what the run recomputes; the rule is in the DAG's docs."""
    import pendulum
    from airflow.serialization.serialized_objects import DagSerialization
    from airflow.timetables.base import DataInterval, TimeRestriction

    from app.hours import RUN_HOURS_RULE

    dag = dagbag.dags["clickstream_hourly"]
    timetable = DagSerialization.from_dict(DagSerialization.to_dict(dag)).timetable
    last = DataInterval(pendulum.datetime(2017, 10, 1, 9), pendulum.datetime(2017, 10, 1, 10))
    restriction = TimeRestriction(earliest=None, latest=None, catchup=True)
    following = timetable.next_dagrun_info(last_automated_data_interval=last, restriction=restriction)
    assert following is not None and following.run_after == datetime(2017, 10, 1, 11, tzinfo=UTC)
    interval = following.data_interval
    assert interval is not None
    assert (interval.start, interval.end) == (datetime(2017, 10, 1, 10, tzinfo=UTC), following.run_after)
    assert recompute_range({}, interval.start, interval.end) == ("2017-10-01T10", "2017-10-01T10")
    assert RUN_HOURS_RULE in (dag.doc_md or "")


def test_hourly_dag_tasks_and_order(dagbag) -> None:  # type: ignore[no-untyped-def]
    dag = dagbag.dags["clickstream_hourly"]
    order = [
        "wait_for_new_files",
        "publish_articles",
        "publish_clicks",
        "drain_topics",
        "hours_to_recompute",
        "recompute_hours",
        "check_tables",
        "refused_files",
    ]
    assert sorted(dag.task_ids) == sorted([*order, "announce_landed_hours", "announce_recomputed_days"])
    for upstream, downstream in itertools.pairwise(order):
        assert downstream in dag.get_task(upstream).downstream_task_ids
    assert dag.get_task("drain_topics").application.endswith("spark_jobs/streaming_job.py")
    assert dag.get_task("wait_for_new_files").mode == "reschedule"
    from app.airflow.pools import PUBLISH_POOL, SPARK_POOL

    assert {dag.get_task(name).pool for name in ("drain_topics", "recompute_hours")} == {SPARK_POOL}
    assert {dag.get_task(name).pool for name in ("publish_articles", "publish_clicks")} == {PUBLISH_POOL}
    assert dag.get_task("check_tables").trigger_rule == "none_failed_min_one_success"
    # refused files are reported last, once, after whatever was published was processed
    refused = dag.get_task("refused_files")
    assert refused.upstream_task_ids == {"publish_articles", "publish_clicks", "check_tables"}
    assert refused.trigger_rule == "all_done_min_one_success" and refused.retries == 0
    # the balanced hours and the days landed again go out as asset partitions after the check
    for announce in ("announce_landed_hours", "announce_recomputed_days"):
        assert dag.get_task(announce).upstream_task_ids == {"check_tables"}


def test_daily_dag_rolls_up_24_landed_hours_or_a_recomputed_day(dagbag) -> None:  # type: ignore[no-untyped-def]
    dag = dagbag.dags["clickstream_daily"]
    assert dag.task_ids == ["hours_balanced", "build_day", "check_day"]
    assert dag.get_task("check_day").upstream_task_ids == {"hours_balanced", "build_day"}
    assert dag.get_task("build_day").application.endswith("spark_jobs/build_days.py")
    assert dag.get_task("hours_balanced").retries == 0
    from airflow.serialization.serialized_objects import DagSerialization

    from app.airflow.assets import LANDED_HOURS, RECOMPUTED_DAYS

    # as the scheduler sees it: the serialized DAG's timetable
    timetable = DagSerialization.from_dict(DagSerialization.to_dict(dag)).timetable
    hours = timetable.get_partition_mapper(name=LANDED_HOURS.name, uri=LANDED_HOURS.uri)
    assert hours.to_downstream("2017-10-01T23") == "2017-10-01"
    expected = hours.to_upstream("2017-10-01")  # type: ignore[attr-defined]  # a RollupMapper
    assert len(expected) == 24 and {"2017-10-01T00", "2017-10-01T23"} <= expected
    days = timetable.get_partition_mapper(name=RECOMPUTED_DAYS.name, uri=RECOMPUTED_DAYS.uri)
    assert days.to_downstream("2017-10-01") == "2017-10-01"


def test_the_catch_up_announces_the_days_due_on_its_own_schedule(dagbag) -> None:  # type: ignore[no-untyped-def]
    from app.airflow.assets import RECOMPUTED_DAYS
    from app.settings import load_settings

    dag = dagbag.dags["clickstream_catch_up"]
    assert dag.task_ids == ["announce_days_due"] and dag.max_active_runs == 1
    assert dag.get_task("announce_days_due").outlets == [RECOMPUTED_DAYS]
    assert dag.timetable.expression == load_settings().airflow_catch_up_schedule


def test_the_day_comes_from_the_param_or_the_partition_and_is_validated() -> None:
    from app.airflow.tasks import day_to_build

    assert day_to_build({"day": "2017-10-02"}, "2017-10-01") == "2017-10-02"
    assert day_to_build({"day": None}, "2017-10-01") == "2017-10-01"
    with pytest.raises(ParameterError, match="give the UTC day"):
        day_to_build({}, None)
    with pytest.raises(ParameterError, match="expected a UTC day"):
        day_to_build({"day": "yesterday"}, None)


def test_announcing_adds_the_keys_as_partitions_or_skips_without_any() -> None:
    from airflow.sdk.exceptions import AirflowSkipException

    from app.airflow.tasks import announce

    class Events:
        def __init__(self) -> None:
            self.keys: list[str] = []

        def add_partitions(self, keys: list[str]) -> None:
            self.keys = keys

    events = Events()
    assert announce(events, {"landed_hours": ["2017-10-01T03"]}, "landed_hours") == ["2017-10-01T03"]
    assert events.keys == ["2017-10-01T03"]
    with pytest.raises(AirflowSkipException):
        announce(Events(), {"landed_hours": []}, "landed_hours")


def test_streaming_dag_runs_one_processing_time_stream_and_retries(dagbag) -> None:  # type: ignore[no-untyped-def]
    dag = dagbag.dags["clickstream_streaming"]
    assert dag.task_ids == ["run_stream"] and dag.max_active_runs == 1 and dag.schedule is None
    task = dag.get_task("run_stream")
    assert task.application.endswith("spark_jobs/streaming_job.py")
    assert task.application_args == ["--trigger", "processing-time"] and task.retries >= 1
    from app.airflow.pools import SPARK_POOL

    assert task.pool != SPARK_POOL  # a stream holding the batch jobs' one slot would stall every hourly run


def test_every_task_has_a_timeout_but_the_stream_that_runs_until_stopped(dagbag) -> None:  # type: ignore[no-untyped-def]
    hourly = dagbag.dags["clickstream_hourly"]
    timeouts = {task.task_id: task.execution_timeout for task in hourly.tasks}
    assert all(timeout is not None and timeout.total_seconds() > 0 for timeout in timeouts.values()), timeouts
    # the drain may wait an hour for a running stream before it drains
    assert timeouts["drain_topics"].total_seconds() > 3600
    assert dagbag.dags["clickstream_streaming"].get_task("run_stream").execution_timeout is None


def test_parsing_the_dags_imports_no_spark_and_no_kafka_client() -> None:
    probe = (
        "import sys; from airflow.dag_processing.dagbag import DagBag; "
        f"bag = DagBag(dag_folder={str(REPO_ROOT / 'dags')!r}); "
        "assert not bag.import_errors, bag.import_errors; "
        "heavy = [m for m in ('pyspark', 'confluent_kafka', 'pandas') if m in sys.modules]; "
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]


def test_the_assets_follow_the_deployments_topics_and_database() -> None:
    """Asset URIs come from the settings: the Kafka provider's `kafka://<server>/<topic>` form and the
    deployment's metastore and database, not names fixed in the code."""
    probe = (
        "from app.airflow import assets; "
        "print(assets.CLICKS_TOPIC.uri, assets.ARTICLES_TOPIC.uri, assets.RECONCILIATION.uri, assets.LANDED_HOURS.uri)"
    )
    environment = {
        **os.environ,
        "KAFKA_SERVERS": "127.0.0.1:19092,127.0.0.1:19093",
        "KAFKA_TOPIC": "clicks_eu",
        "KAFKA_METADATA_TOPIC": "articles_eu",
        "HIVE_DATABASE": "clickstream_eu",
        "HIVE_METASTORE_PORT": "19083",
    }
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True, env=environment
    )
    assert result.stdout.split() == [
        "kafka://127.0.0.1:19092/clicks_eu",
        "kafka://127.0.0.1:19092/articles_eu",
        "hive://127.0.0.1:19083/clickstream_eu/hour_reconciliation",
        "hive://127.0.0.1:19083/clickstream_eu/landed-hours",
    ]


def test_recompute_range_from_the_data_interval_or_the_params() -> None:
    start, end = datetime(2017, 10, 1, 5, tzinfo=UTC), datetime(2017, 10, 1, 6, tzinfo=UTC)
    assert recompute_range({}, None, None) is None
    assert recompute_range({}, start, end) == ("2017-10-01T05", "2017-10-01T05")
    assert recompute_range({}, start, start) is None  # an empty interval covers no hour
    six = datetime(2017, 10, 1, 0, tzinfo=UTC), datetime(2017, 10, 1, 6, tzinfo=UTC)
    assert recompute_range({}, *six) == ("2017-10-01T00", "2017-10-01T05")
    assert recompute_range({"recompute_from": "2017-10-01T00", "recompute_to": "2017-10-01T03"}, start, end) == (
        "2017-10-01T00",
        "2017-10-01T03",
    )


def test_no_run_covers_an_hour_that_is_not_over() -> None:
    now = datetime(2026, 12, 4, 11, 20, tzinfo=UTC)
    closed = {"recompute_from": "2026-12-04T09", "recompute_to": "2026-12-04T10"}
    assert recompute_range(closed, None, None, now) == ("2026-12-04T09", "2026-12-04T10")
    with pytest.raises(ParameterError, match=r"2026-12-04T11 is not over until 2026-12-04 12:00 UTC"):
        recompute_range({**closed, "recompute_to": "2026-12-04T11"}, None, None, now)
    future = datetime(2026, 12, 4, 11, tzinfo=UTC), datetime(2026, 12, 4, 12, tzinfo=UTC)
    with pytest.raises(ParameterError, match="the run's data interval"):
        recompute_range({}, *future, now)


def test_a_day_that_is_not_complete_is_refused_with_the_command_that_checks_its_hours(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from app.airflow import tasks
    from app.reconciliation import BALANCED, ReconciliationTable

    rows = {("2017-10-01", hour): {"state": BALANCED, "raw_clicks": 1} for hour in range(24) if hour < 18}
    rows[("2017-10-01", 3)] = {"state": "landing: clicks_hour_003.csv not drained yet", "raw_clicks": 0}
    monkeypatch.setattr(ReconciliationTable, "__init__", lambda self, settings: None)
    monkeypatch.setattr(ReconciliationTable, "exists", lambda self: True)
    monkeypatch.setattr(ReconciliationTable, "read", lambda self, days: rows)
    from app.settings import load_settings

    with pytest.raises(tasks.HoursNotBalanced) as refused:
        tasks.require_balanced_day(load_settings(), "2017-10-01")
    message = str(refused.value)
    assert message.startswith("2017-10-01: 7 of its 24 hours are not balanced")
    assert "2017-10-01T03: landing: clicks_hour_003.csv" in message and "2017-10-01T23: never checked" in message
    command = tasks.check_hours_command(("2017-10-01", 18), ("2017-10-01", 23))
    assert message.endswith(command) and "T03" not in command
    assert command == (
        ".venv/bin/python -m app.runtime airflow dags trigger clickstream_hourly "
        """--conf '{"recompute_from": "2017-10-01T18", "recompute_to": "2017-10-01T23"}'"""
    )


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"recompute_from": "2017-10-01T00"}, "go together"),
        ({"recompute_from": "yesterday", "recompute_to": "today"}, "expected UTC hours like 2017-10-01T05"),
        ({"recompute_from": "2017-10-02T00", "recompute_to": "2017-10-01T00"}, "is before"),
    ],
)
def test_bad_recompute_params_are_named(params: dict[str, str], message: str) -> None:
    start = datetime(2017, 10, 1, 5, tzinfo=UTC)
    with pytest.raises(ParameterError, match=message):
        recompute_range(params, start, start)


def test_trigger_params_are_optional_and_hours_are_validated(dagbag) -> None:  # type: ignore[no-untyped-def]
    import copy

    params = dagbag.dags["clickstream_hourly"].params
    assert copy.deepcopy(params).validate() == {"data_dir": None, "recompute_from": None, "recompute_to": None}
    good = copy.deepcopy(params)
    good["recompute_from"] = "2017-10-01T05"
    assert good.validate()["recompute_from"] == "2017-10-01T05"
    with pytest.raises(Exception, match="does not match"):
        bad = copy.deepcopy(params)
        bad["recompute_from"] = "yesterday"
        bad.validate()


def test_refused_files_are_named_once_with_their_reason_and_fix() -> None:
    from app.airflow.tasks import FilesRefused, report_refused_files

    link = {"file": "clicks_hour_9.csv", "reason": "it links to /etc/passwd, outside the data folder", "fix": "remove"}
    changed = {"file": "clicks_hour_1.csv", "reason": "changed after it was published", "fix": "--new-version"}
    with pytest.raises(FilesRefused) as refused:
        report_refused_files({"refused": [link]}, {"refused": [link, changed]}, None)
    message = str(refused.value)
    assert message.startswith("2 file(s) refused") and message.count("clicks_hour_9.csv") == 1
    assert "to do: --new-version" in message and "outside the data folder" in message
    assert report_refused_files({"refused": []}, None) == {"refused": []}


def test_the_forget_dag_validates_forgets_checks_and_announces(dagbag) -> None:  # type: ignore[no-untyped-def]
    from app.airflow.assets import ERASURES, LANDED_HOURS, RECOMPUTED_DAYS
    from app.airflow.pools import SPARK_POOL

    dag = dagbag.dags["clickstream_forget"]
    assert type(dag.timetable).__name__ == "NullTimetable" and dag.max_active_runs == 1  # on request only
    assert dag.get_task("forget_users").upstream_task_ids == {"users_to_forget"}
    assert dag.get_task("check_erased_hours").upstream_task_ids == {"users_to_forget", "forget_users"}
    assert dag.get_task("forget_users").application.endswith("spark_jobs/forget_users.py")
    assert dag.get_task("forget_users").pool == SPARK_POOL and ERASURES in dag.get_task("forget_users").outlets
    assert dag.get_task("announce_landed_hours").outlets == [LANDED_HOURS]
    assert dag.get_task("announce_recomputed_days").outlets == [RECOMPUTED_DAYS]
    assert dag.get_task("users_to_forget").retries == 0


def test_the_users_to_forget_come_from_the_param_and_a_bad_id_is_named() -> None:
    from app.airflow.tasks import forget_arguments

    assert forget_arguments({"users": "123, 456 123"}) == ["--user", "123,456", "--days-by-airflow"]
    with pytest.raises(ParameterError, match="users: an empty user id"):
        forget_arguments({"users": ""})
    with pytest.raises(ParameterError, match="users: user id 'x1' is not a whole number"):
        forget_arguments({"users": "12,x1"})
