"""clickstream_hourly: new CSV files -> Kafka -> Spark -> the hour's Hive partitions.

Every hour, for the hour that has just closed (and for each hour of a backfill): wait for files
that are not published yet, publish the article files and then the click files (exactly once),
drain both topics with the streaming job (available-now; when `clickstream_streaming` runs, wait
for it to pass the topics' end instead), recompute the run's hours with the batch job, and check
that the aggregates agree with the raw table and the raw table with the producer's ledger, hour
by hour (`hour_reconciliation`). Each closed hour found balanced (or empty) is announced as a
partition of the `clickstream_landed_hours` asset (`2017-10-01T03`), which schedules
`clickstream_daily`; an hour announced before is announced again when it changes. A file the
producer refuses holds back nothing: the rest is published and processed, and the run fails at
its end in `refused_files`, which names each refused file, why, and what to do. Triggered from the
UI it takes a data folder and a range of hours to recompute. The work lives in `app/` and
`spark_jobs/`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import CronDataIntervalTimetable, PokeReturnValue, dag, get_current_context, task

from app.airflow.assets import (
    ARTICLES_TOPIC,
    CLICKS_TOPIC,
    HOURLY_TABLES,
    LANDED_HOURS,
    RECOMPUTED_DAYS,
    RECONCILIATION,
)
from app.airflow.operators import BatchSparkJobOperator, DrainTopicsOperator, batch_task_defaults, optional_text
from app.airflow.pools import PUBLISH_POOL  # created by `make up`, one slot
from app.hours import HOUR_KEY_PATTERN, RUN_HOURS_RULE
from app.settings import load_settings

SETTINGS = load_settings()  # the deployment's; a run's data folder may differ (its params)


@dag(
    dag_id="clickstream_hourly",
    # a run's data interval is the hour it covers: the run at 11:00 has [10:00, 11:00), logical date 10:00
    schedule=CronDataIntervalTimetable("0 * * * *", timezone="UTC"),
    start_date=pendulum.datetime(2017, 10, 1, tz="UTC"),
    catchup=False,
    max_active_runs=3,  # a run waiting for files must not hold back a backfill or a UI trigger
    default_args=batch_task_defaults(),
    tags=["clickstream"],
    params={
        "data_dir": optional_text("Data folder", "Folder with the CSV files (empty: PRODUCER_DATA_ROOT_DIRECTORY)"),
        "recompute_from": optional_text(
            "Recompute from (UTC hour)",
            "First UTC hour to recompute, like 2017-10-01T00 (empty: the run's data interval); closed hours only",
            HOUR_KEY_PATTERN,
        ),
        "recompute_to": optional_text(
            "Recompute to (UTC hour)", "Last UTC hour to recompute, inclusive, like 2017-10-01T05", HOUR_KEY_PATTERN
        ),
    },
    doc_md=f"{__doc__}\n{RUN_HOURS_RULE}",
)
def clickstream_hourly() -> None:
    @task.sensor(
        task_id="wait_for_new_files",
        poke_interval=SETTINGS.airflow_sensor_poke_seconds,
        timeout=SETTINGS.airflow_sensor_timeout_seconds,  # then skipped: nothing new this hour
        mode="reschedule",
        soft_fail=True,
        execution_timeout=timedelta(minutes=5),  # one poke
    )
    def wait_for_new_files() -> PokeReturnValue:
        from app.airflow.tasks import pending_files, run_settings

        context = get_current_context()
        pending = pending_files(run_settings(context))
        # a backfill, or a run asked to recompute hours, goes on without new files
        go_on = bool(pending) or context["dag_run"].run_type in ("backfill", "manual")
        return PokeReturnValue(is_done=go_on, xcom_value=pending)

    @task(outlets=[ARTICLES_TOPIC], pool=PUBLISH_POOL)
    def publish_articles() -> dict[str, object]:
        from app.airflow.tasks import publish_kind, run_settings

        return publish_kind(run_settings(get_current_context()), "articles")

    @task(outlets=[CLICKS_TOPIC], pool=PUBLISH_POOL)
    def publish_clicks() -> dict[str, object]:
        from app.airflow.tasks import publish_kind, run_settings

        return publish_kind(run_settings(get_current_context()), "clicks")

    @task
    def hours_to_recompute() -> list[str]:
        """Arguments of the batch job: the hours the run covers (`RUN_HOURS_RULE`); none for a manual
        run without parameters (its drain recomputed what it touched, and the check finds those hours)."""
        from app.airflow.tasks import recompute_range

        context = get_current_context()
        hours = recompute_range(context["params"], context.get("data_interval_start"), context.get("data_interval_end"))
        return ["--from", hours[0], "--to", hours[1]] if hours else []

    drain = DrainTopicsOperator(
        task_id="drain_topics",
        # up to an hour waiting for a running stream to pass the topics' end, then a backlog's drain
        execution_timeout=timedelta(hours=3),
        inlets=[CLICKS_TOPIC, ARTICLES_TOPIC],
        outlets=HOURLY_TABLES,
    )
    hours = hours_to_recompute()
    recompute = BatchSparkJobOperator(
        task_id="recompute_hours",
        job="recompute_hours.py",
        execution_timeout=timedelta(hours=1),
        application_args=hours,
        skip_without_arguments=True,
        outlets=HOURLY_TABLES,
    )

    # also after a skipped recompute; not retried: a disagreement does not go away by itself
    @task(trigger_rule="none_failed_min_one_success", inlets=HOURLY_TABLES, outlets=[RECONCILIATION], retries=0)
    def check_tables(recompute_arguments: list[str]) -> dict[str, object]:
        from app.airflow.tasks import check_run_tables, run_settings

        return check_run_tables(run_settings(get_current_context()), recompute_arguments)

    # the run's last word on refused files: it fails here, naming each, after everything published
    # was processed; not retried (a refusal is decided once, and heals only when the file changes)
    @task(trigger_rule="all_done_min_one_success", retries=0)
    def refused_files() -> dict[str, object]:
        from app.airflow.tasks import report_refused_files

        ti = get_current_context()["ti"]
        return report_refused_files(*(ti.xcom_pull(task_ids=task) for task in ("publish_articles", "publish_clicks")))

    # the hours the check found balanced, as partitions of the landed-hours asset (skipped when none)
    @task(outlets=[LANDED_HOURS])
    def announce_landed_hours(check_result: dict[str, object], *, outlet_events: Any = None) -> list[str]:
        from app.airflow.tasks import announce

        return announce(outlet_events[LANDED_HOURS], check_result, "landed_hours")

    # the days that were complete and had an hour landed again: their daily run is due again
    @task(outlets=[RECOMPUTED_DAYS])
    def announce_recomputed_days(check_result: dict[str, object], *, outlet_events: Any = None) -> list[str]:
        from app.airflow.tasks import announce

        return announce(outlet_events[RECOMPUTED_DAYS], check_result, "recomputed_days")

    check = check_tables(hours)  # type: ignore[arg-type]  # an XComArg, resolved when the task runs
    announce_landed_hours(check)  # type: ignore[arg-type]
    announce_recomputed_days(check)  # type: ignore[arg-type]
    articles, clicks = publish_articles(), publish_clicks()
    wait_for_new_files() >> articles >> clicks >> drain >> hours >> recompute >> check
    [articles, clicks, check] >> refused_files()


clickstream_hourly()
