"""What the Airflow tasks of clickstream do, as plain functions the DAG files call.

The DAG files stay thin: they wire these functions and `SparkSubmitOperator`s together. Nothing
here is imported at DAG-parse time except the small helpers that build operator arguments, and
those touch neither Kafka nor Spark.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.hours import HOUR_LAYOUT, Hour, hour_key
from app.settings import REPO_ROOT, Settings, kafka_properties, load_settings

if TYPE_CHECKING:
    from app.checkpoint import Offsets

log = logging.getLogger(__name__)

KAFKA_CONNECTION = "kafka_default"
SPARK_CONNECTION = "spark_default"


class ParameterError(ValueError):
    """A parameter given when the DAG was triggered is unusable; the message says which and why."""


def settings_for_run(params: Mapping[str, Any] | None = None, kafka: Mapping[str, Any] | None = None) -> Settings:
    """The settings, with a run's data folder and the Kafka connection's servers and login applied."""
    settings = load_settings()
    data_dir = (params or {}).get("data_dir")
    if data_dir:
        folder = Path(data_dir).expanduser()
        folder = folder if folder.is_absolute() else REPO_ROOT / folder
        if not folder.is_dir():
            raise ParameterError(f"data_dir: {folder} is not a folder")
        settings = replace(settings, producer_data_root_directory=folder)
    connection = kafka or {}
    applied: dict[str, Any] = {
        field: str(connection[key]) for key, field in CONNECTION_FIELDS.items() if connection.get(key)
    }
    # every other property of the connection reaches every Kafka client of the task, whole
    others = {key: value for key, value in connection.items() if key not in CONNECTION_FIELDS}
    if others:
        from app.kafka_io import extra_client_properties

        taken = extra_client_properties(settings)
        source = f"the {KAFKA_CONNECTION} connection's extra"
        applied["kafka_client_config"] = kafka_properties(source, json.dumps({**taken, **others}))
    return replace(settings, **applied) if applied else settings


# the Airflow Kafka connection's extra (librdkafka's names, which the provider's hooks use too)
# and the settings they stand for
CONNECTION_FIELDS = {
    "bootstrap.servers": "kafka_servers",
    "security.protocol": "kafka_security_protocol",
    "sasl.mechanisms": "kafka_sasl_mechanism",
    "sasl.username": "kafka_sasl_username",
    "sasl.password": "kafka_sasl_password",
    "ssl.ca.location": "kafka_ssl_ca_location",
}


def run_settings(context: Mapping[str, Any]) -> Settings:
    """The settings a task of a DAG run works with: its params, and the Kafka connection's servers and login."""
    return settings_for_run(context["params"], kafka_connection_extra())


def kafka_connection_extra(conn_id: str = KAFKA_CONNECTION) -> dict[str, Any]:
    """The Airflow Kafka connection's client configuration (the provider's hooks read the same)."""
    from airflow.providers.apache.kafka.hooks.base import KafkaBaseHook

    return dict(KafkaBaseHook.get_connection(conn_id).extra_dejson)


def pending_files(settings: Settings) -> list[str]:
    """Files in the data folder the ledger has not seen as they are: not published yet (or changed
    since), or to be refused for the first time (a run then names them). A file refused before and
    unchanged since is not new; once it changes it is looked at again."""
    from app.producer.publisher import PublishOptions, publish
    from app.producer.report import REFUSED, WOULD_PUBLISH

    report = publish(settings, PublishOptions(dry_run=True))
    return [
        file.file
        for file in report.files
        if file.status == WOULD_PUBLISH or (file.status == REFUSED and not file.refused_before)
    ]


class FilesRefused(RuntimeError):
    """Files the producer refused; the message names each, its reason and what to do."""


def publish_kind(settings: Settings, kind: str) -> dict[str, Any]:
    """Publish one kind of file ("articles" or "clicks"): every file that can be. Refused files are
    recorded in the ledger and listed in the result (`refused`), for `refused_files` to report at
    the end of the run: one bad file holds back neither the good ones nor the rest of the run."""
    from app.producer.discovery import FileKind
    from app.producer.publisher import PublishOptions, publish

    report = publish(settings, PublishOptions(kinds=[FileKind(kind)]))
    for refused in report.refused:
        log.error("refused: %s: %s; to do: %s", refused.file, refused.message, refused.fix)
    summary = report.to_dict()
    log.info("published %s %s rows, %s rejected", kind, summary["rows"], summary["rejected"])
    return summary


DRAINED = "drained"  # the checkpoint is past the topics' end and no landed hour waits for its recompute
STREAM_DRAINS = "a running stream drains"  # a streaming job runs on the checkpoint: wait for it
DRAIN_HERE = "drain here"  # no job runs on the checkpoint: the caller drains


def topics_end(settings: Settings) -> Offsets:
    """Both topics' ends now: what a drain started now must get past."""
    from app.kafka_io import end_offsets

    return end_offsets(settings, [settings.kafka_topic, settings.kafka_metadata_topic])


def drain_state(settings: Settings, target: Offsets) -> str:
    """Whether the topics' data up to `target` is drained (`DRAINED`), is being drained by a streaming
    job running on the checkpoint (`STREAM_DRAINS`), or must be drained by the caller (`DRAIN_HERE`).
    A running stream on the checkpoint is never joined by a second job; a drain that died after its
    last micro-batch left hours to recompute, and those count as not drained."""
    from app.checkpoint import committed_offsets, offsets_behind, pending_hours, running_stream

    behind = offsets_behind(target, committed_offsets(settings))
    if not any(behind.values()) and not pending_hours(settings):
        return DRAINED
    return DRAIN_HERE if running_stream(settings) is None else STREAM_DRAINS


def recompute_range(
    params: Mapping[str, Any],
    interval_start: datetime | None,
    interval_end: datetime | None,
    now: datetime | None = None,
) -> tuple[str, str] | None:
    """The first and last UTC hour the run covers, by `app.hours.RUN_HOURS_RULE`: the params' range
    if given, else the run's data interval `[start, end)`; None for a run with neither (a manual run
    without parameters: its drain recomputed what its files touched). Raises `ParameterError` for a
    range that is malformed or reaches an hour that has not closed yet."""
    from app.hours import hour_end, hour_of, interval_hours, is_closed

    moment = now or datetime.now(UTC)
    first, last = params.get("recompute_from"), params.get("recompute_to")
    if bool(first) != bool(last):
        raise ParameterError("recompute_from and recompute_to go together: give both or neither")
    if first and last:
        try:
            start = datetime.strptime(str(first), HOUR_LAYOUT)
            end = datetime.strptime(str(last), HOUR_LAYOUT)
        except ValueError:
            raise ParameterError(
                f"recompute_from/recompute_to: expected UTC hours like 2017-10-01T05, got {first!r} and {last!r}"
            ) from None
        if end < start:
            raise ParameterError(f"recompute_to {last} is before recompute_from {first}")
        hours = [hour_of(start), hour_of(end)]
        what = f"recompute_to {last}"
    elif interval_start is None or interval_end is None:
        return None
    else:
        hours = interval_hours(interval_start, interval_end)
        if not hours:
            return None
        what = f"the run's data interval ({interval_start:%Y-%m-%dT%H:%M} to {interval_end:%Y-%m-%dT%H:%M})"
    if not is_closed(hours[-1], moment):
        raise ParameterError(
            f"{what}: the hour {hour_key(hours[-1])} is not over until {hour_end(hours[-1]):%Y-%m-%d %H:%M} UTC "
            f"(now {moment:%Y-%m-%d %H:%M} UTC); a run covers closed hours only: ask for an earlier hour"
        )
    return hour_key(hours[0]), hour_key(hours[-1])


def report_refused_files(*results: Mapping[str, Any] | None) -> dict[str, Any]:
    """The run's last word on refused files (the publishing tasks' results): raise `FilesRefused`
    naming each file once, its reason and its fix; otherwise say there were none."""
    refused: dict[str, Mapping[str, Any]] = {}
    for result in results:
        for item in (result or {}).get("refused", []):
            refused.setdefault(str(item["file"]), item)
    if refused:
        listed = "\n".join(
            f"  - {name}: {item['reason']}\n    to do: {item['fix']}" for name, item in sorted(refused.items())
        )
        raise FilesRefused(f"{len(refused)} file(s) refused; every other file was published and processed:\n{listed}")
    log.info("no file was refused")
    return {"refused": []}


class TablesDisagree(RuntimeError):
    """The tables disagree with each other or with the ledger; the message lists each disagreement."""


class HoursNotBalanced(RuntimeError):
    """A day's hours are not all balanced in `hour_reconciliation`; the message names each."""


def check_run_tables(settings: Settings, recompute_arguments: list[str]) -> dict[str, Any]:
    """The run's check: its hours (the batch job's `--from`/`--to`) and every hour changed since
    its last check (all hours when there are no arguments and nothing was reconciled yet); writes
    their rows of `hour_reconciliation`; raises, listing every disagreement, when the tables
    disagree. Returns the balanced hours (`landed_hours`) and the days that were complete before
    and had an hour landed again (`recomputed_days`), for the asset events."""
    from app.hours import hours_in_range

    given = dict(zip(recompute_arguments[::2], recompute_arguments[1::2], strict=True))
    return check_hours(settings, hours_in_range(given["--from"], given["--to"]) if given else [])


def check_hours(settings: Settings, hours: list[Hour]) -> dict[str, Any]:
    """`check_run_tables` for a list of hours."""
    from app.table_checks import check_tables

    report = check_tables(settings, hours)
    if report.problems:
        listed = "\n".join(f"  - {problem}" for problem in report.problems[:50])
        raise TablesDisagree(f"{len(report.problems)} disagreement(s) in the tables ({report.scope}):\n{listed}")
    landed = report.balanced_hours
    log.info(
        "the tables agree: %s, %s raw clicks, %s ledger file(s); %s hour(s) balanced",
        report.scope, report.raw_clicks, report.files_checked, len(landed),
    )  # fmt: skip
    return {
        "scope": report.scope,
        "raw_clicks": report.raw_clicks,
        "ledger_files": report.files_checked,
        "landed_hours": [hour_key(hour) for hour in landed],
        "recomputed_days": sorted({day for day, _ in landed} & report.days_complete_before),
    }


def forget_arguments(params: Mapping[str, Any]) -> list[str]:
    """The erasure job's arguments from a `clickstream_forget` run's `users` parameter (ids
    separated by commas or spaces); `ParameterError` naming an empty or malformed id."""
    from app.erasure import ErasureRequestError, parse_user_ids

    try:
        users = parse_user_ids([str(params.get("users") or "")])
    except ErasureRequestError as error:
        raise ParameterError(f"users: {error}") from None
    return ["--user", ",".join(str(user) for user in users), "--days-by-airflow"]


def check_erased_hours(settings: Settings, job_arguments: list[str]) -> dict[str, Any]:
    """After an erasure: check the hours it rewrote (their rows of `hour_reconciliation`; raises
    `TablesDisagree` listing each disagreement) and return them, with the days it left to
    `clickstream_daily`, for the asset events."""
    from app.erasure import erasures_done, parse_user_ids

    done = erasures_done(settings, parse_user_ids([job_arguments[job_arguments.index("--user") + 1]]))
    result = check_hours(settings, done.hours)
    result["recomputed_days"] = sorted(set(result["recomputed_days"]) | set(done.days))
    result["raw_rows_removed"] = done.rows_removed
    return result


def announce(events: Any, check_result: Mapping[str, Any], field: str) -> list[str]:
    """Add the check's `field` keys (hours or days) to an asset's outlet events as its partitions;
    skip the task when there are none, so that no event without a partition is sent."""
    keys = [str(key) for key in check_result.get(field) or []]
    if not keys:
        from airflow.sdk.exceptions import AirflowSkipException

        raise AirflowSkipException(f"no {field.replace('_', ' ')} to announce")
    events.add_partitions(keys)
    log.info("announced %s partition(s) of %s: %s", len(keys), field.replace("_", " "), ", ".join(keys))
    return keys


def day_to_build(params: Mapping[str, Any], partition_key: str | None) -> str:
    """The day a `clickstream_daily` run builds: its `day` parameter, else its partition key."""
    from app.hours import DAY_LAYOUT

    day = params.get("day") or partition_key
    if not day:
        raise ParameterError("day: give the UTC day to build, like 2017-10-01 (a scheduled run has it as partition)")
    try:
        return datetime.strptime(str(day), DAY_LAYOUT).strftime(DAY_LAYOUT)
    except ValueError:
        raise ParameterError(f"day: expected a UTC day like 2017-10-01, got {day!r}") from None


def check_day_tables(settings: Settings, day: str) -> dict[str, Any]:
    """Raise `TablesDisagree` when a daily table of `day` does not add up to the day's raw clicks."""
    from app.table_checks import check_day

    problems = check_day(settings, day)
    if problems:
        listed = "\n".join(f"  - {problem}" for problem in problems)
        raise TablesDisagree(f"{len(problems)} disagreement(s) in the daily tables:\n{listed}")
    log.info("%s: the daily tables add up to the day's raw clicks", day)
    return {"day": day}


class DayUpToDate(RuntimeError):
    """The day's tables were built from the versions its hours hold now: nothing to build."""


def require_balanced_day(settings: Settings, day: str, only_if_changed: bool = False) -> dict[str, Any]:
    """The day's hour versions (hour of the day -> `aggregate_versions`), once its 24 hours are all
    balanced or empty in `hour_reconciliation`; else `HoursNotBalanced`, naming each hour that is not,
    and the command that checks the hours never checked. With `only_if_changed`, `DayUpToDate` when
    the day's tables were built from exactly these versions already."""
    from app.hours import hour_spans
    from app.reconciliation import ReconciliationTable, balanced_day, built_from_current

    rows = ReconciliationTable(settings).read_if_exists([day])
    problems = balanced_day(rows, day)
    if problems:
        listed = "\n".join(f"  - {problem}" for problem in problems)
        unchecked = [(day, hour) for hour in range(24) if (day, hour) not in rows]
        fixes = "".join(f"\n{check_hours_command(first, last)}" for first, last in hour_spans(unchecked))
        hint = (
            "\nHours never checked had no run covering them and no clicks on both sides within "
            f"QUIET_GAP_MAX_HOURS ({settings.quiet_gap_max_hours}); to check them (those without clicks "
            f"are recorded as empty), run:{fixes}"
            if fixes
            else ""
        )
        raise HoursNotBalanced(
            f"{day}: {len(problems)} of its 24 hours are not balanced; not building it:\n{listed}{hint}"
        )
    if only_if_changed and built_from_current(rows, day):
        raise DayUpToDate(f"{day}: its daily tables were built from the versions its 24 hours hold now")
    clicks = sum(int(row["raw_clicks"]) for row in rows.values())
    log.info("%s: all 24 hours balanced or empty, %s clicks", day, clicks)
    versions = {hour: str(row["aggregate_versions"]) for (_, hour), row in rows.items()}
    return {"day": day, "clicks": clicks, "versions": versions}


def check_hours_command(first: Hour, last: Hour) -> str:
    """The command (as pasted in the checkout) that runs `clickstream_hourly` over those hours."""
    conf = json.dumps({"recompute_from": hour_key(first), "recompute_to": hour_key(last)})
    return f".venv/bin/python -m app.runtime airflow dags trigger clickstream_hourly --conf '{conf}'"


def record_day_built(settings: Settings, day: str, versions: Mapping[str, str]) -> dict[str, Any]:
    """Note in the day's reconciliation rows the hour versions its daily tables were built from."""
    from app.reconciliation import ReconciliationTable, now

    ReconciliationTable(settings).mark_day_built(day, {int(hour): version for hour, version in versions.items()}, now())
    return {"day": day, "hours": len(versions)}


def days_due(settings: Settings) -> list[str]:
    """Days whose 24 hours count as balanced and whose daily tables are missing or older than them."""
    from app.reconciliation import ReconciliationTable, days_due

    due = days_due(ReconciliationTable(settings).read_if_exists())
    log.info("%s day(s) due: %s", len(due), ", ".join(due) or "none")
    return due


def spark_job_environment(settings: Settings) -> dict[str, str]:
    """Environment a Spark job adds to the worker's: the settings, Spark's variables, and the
    project on the Python path. Of the secrets only those the jobs need (the Kafka password, the
    erasure key); in the environment (readable by its owner alone), not on the command line that
    Airflow logs."""
    from app.spark_session import spark_environment

    needed = {"KAFKA_SASL_PASSWORD": settings.kafka_sasl_password, "CLICKSTREAM_ERASURE_KEY": settings.erasure_key}
    secrets = {variable: value for variable, value in needed.items() if value}
    return {**settings.environment(), **secrets, **spark_environment(settings), "PYTHONPATH": str(REPO_ROOT)}


def spark_job_conf(settings: Settings) -> dict[str, str]:
    """The project's Spark properties, less the master, which the Airflow Spark connection gives."""
    from app.spark_session import spark_conf

    return {key: value for key, value in spark_conf(settings).items() if key != "spark.master"}
