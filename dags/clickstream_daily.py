"""clickstream_daily: a UTC day's tables, once all 24 of its hours have landed and balanced.

Scheduled on the hour partitions of `clickstream_landed_hours` rolled up by day: a day runs when
`clickstream_hourly` has announced all 24 of its hours (an hour without clicks counts once it is
checked `empty`), and again when an hour of a day already complete lands again (late clicks, a
changed article, a backfill), through `clickstream_recomputed_days`; `clickstream_catch_up`
announces there too every complete day whose tables are missing or older than its hours (days
announced while this DAG was paused, or before it existed). A run refuses a day whose hours are
not all balanced or empty in `hour_reconciliation`, naming each and the command that checks the
ones never checked; a run made by an announcement skips a day already built from the versions its hours hold
now. Otherwise it builds the day's `article_daily`, `category_daily` and `day_summary` partitions
with Spark (exact distinct users and sessions of the day), checks that they add up to the day's
raw clicks, and records in each hour's reconciliation row the version the day was built from.
Triggered from the UI it takes the day as a parameter, and always builds. The work lives in
`app/` and `spark_jobs/`.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import (
    DayWindow,
    Param,
    PartitionedAssetTimetable,
    RollupMapper,
    StartOfDayMapper,
    dag,
    get_current_context,
    task,
)

from app.airflow.assets import DAILY_TABLES, HOURLY_TABLES, LANDED_HOURS, RECOMPUTED_DAYS, RECONCILIATION
from app.airflow.operators import BatchSparkJobOperator, batch_task_defaults, optional_text
from app.hours import DAY_LAYOUT, DAY_PATTERN, HOUR_LAYOUT


@dag(
    dag_id="clickstream_daily",
    schedule=PartitionedAssetTimetable(
        assets=LANDED_HOURS | RECOMPUTED_DAYS,
        partition_mapper_config={
            # 2017-10-01T03 -> 2017-10-01, waiting for the 24 hours of the day
            LANDED_HOURS: RollupMapper(
                upstream_mapper=StartOfDayMapper(input_format=HOUR_LAYOUT, timezone="UTC"), window=DayWindow()
            ),
            RECOMPUTED_DAYS: StartOfDayMapper(input_format=DAY_LAYOUT, timezone="UTC"),
        },
    ),
    start_date=pendulum.datetime(2017, 10, 1, tz="UTC"),
    catchup=False,
    max_active_runs=2,
    default_args=batch_task_defaults(),
    tags=["clickstream"],
    params={
        "day": optional_text(
            "Day (UTC)", "The UTC day to build, like 2017-10-01 (empty: the run's partition)", DAY_PATTERN
        ),
        "only_if_changed": Param(
            False,
            type="boolean",
            title="Only if its hours changed",
            description="Skip the day when its tables were built from the versions its hours hold now",
        ),
    },
    doc_md=__doc__,
)
def clickstream_daily() -> None:
    # not retried: a day whose hours disagree does not heal by waiting; a later hourly run re-announces it
    @task(inlets=[RECONCILIATION], retries=0, multiple_outputs=True)
    def hours_balanced() -> dict[str, object]:
        """The daily job's arguments and the hour versions it builds from, once the day's 24 hours are
        balanced or empty; skipped when a scheduled run finds the day built from those versions."""
        from airflow.sdk.exceptions import AirflowSkipException

        from app.airflow.tasks import DayUpToDate, day_to_build, require_balanced_day, run_settings

        context = get_current_context()
        params, run = context["params"], context["dag_run"]
        day = day_to_build(params, run.partition_key)
        # a run an announcement made skips an up-to-date day; one asked for by hand or a backfill builds it
        only_if_changed = run.run_type == "asset_triggered" or bool(params.get("only_if_changed"))
        try:
            found = require_balanced_day(run_settings(context), day, only_if_changed)
        except DayUpToDate as up_to_date:
            raise AirflowSkipException(str(up_to_date)) from None
        return {"arguments": ["--day", day], "versions": {str(hour): v for hour, v in found["versions"].items()}}

    balanced = hours_balanced()
    # the task's two outputs (multiple_outputs): a plain XComArg each, resolved when a task runs
    arguments, versions = balanced["arguments"], balanced["versions"]  # type: ignore[index]
    build = BatchSparkJobOperator(
        task_id="build_day",
        job="build_days.py",
        application_args=arguments,
        inlets=HOURLY_TABLES,
        outlets=DAILY_TABLES,
    )

    # the check, then the record of what the day was built from (in hour_reconciliation)
    @task(inlets=DAILY_TABLES, outlets=[RECONCILIATION], retries=0)
    def check_day(build_arguments: list[str], versions: dict[str, str]) -> dict[str, object]:
        from app.airflow.tasks import check_day_tables, record_day_built, run_settings

        settings = run_settings(get_current_context())
        checked = check_day_tables(settings, build_arguments[-1])
        return {**checked, **record_day_built(settings, build_arguments[-1], versions)}

    balanced >> build >> check_day(arguments, versions)


clickstream_daily()
