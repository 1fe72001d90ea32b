"""clickstream_daily: a UTC day's tables, once all 24 of its hours have landed and balanced.

Scheduled on the hour partitions of `clickstream_landed_hours` rolled up by day: a day runs when
`clickstream_hourly` has announced all 24 of its hours (an hour without clicks counts once a run
has checked it), and again when an hour of a day already complete lands again (late clicks, a
changed article, a backfill), through `clickstream_recomputed_days`. A run refuses a day whose
hours are not all balanced in `hour_reconciliation`, naming each; otherwise it builds the day's
`article_daily`, `category_daily` and `day_summary` partitions with Spark (exact distinct users
and sessions of the day) and checks that they add up to the day's raw clicks. Triggered from the
UI it takes the day as a parameter. The work lives in `app/` and `spark_jobs/`.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import (
    DayWindow,
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
    },
    doc_md=__doc__,
)
def clickstream_daily() -> None:
    # not retried: a day whose hours disagree does not heal by waiting; a later hourly run re-announces it
    @task(inlets=[RECONCILIATION], retries=0)
    def hours_balanced() -> list[str]:
        """Arguments of the daily job, once the day's 24 hours are balanced."""
        from app.airflow.tasks import day_to_build, require_balanced_day, run_settings

        context = get_current_context()
        day = day_to_build(context["params"], context["dag_run"].partition_key)
        require_balanced_day(run_settings(context), day)
        return ["--day", day]

    arguments = hours_balanced()
    build = BatchSparkJobOperator(
        task_id="build_day",
        job="build_days.py",
        application_args=arguments,
        inlets=HOURLY_TABLES,
        outlets=DAILY_TABLES,
    )

    @task(inlets=DAILY_TABLES, retries=0)
    def check_day(build_arguments: list[str]) -> dict[str, object]:
        from app.airflow.tasks import check_day_tables, run_settings

        return check_day_tables(run_settings(get_current_context()), build_arguments[-1])

    arguments >> build >> check_day(arguments)  # type: ignore[arg-type]


clickstream_daily()
