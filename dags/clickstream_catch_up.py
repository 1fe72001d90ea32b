"""clickstream_catch_up: every complete day gets its daily tables, however its hours were announced.

On `AIRFLOW_CATCH_UP_SCHEDULE` (half past every hour by default) it reads `hour_reconciliation`
(one small file per day, no Spark) and announces, as partitions of `clickstream_recomputed_days`,
each day whose 24 hours are balanced or empty but whose daily tables are missing or were built
from older versions of its hours: days whose hours landed while `clickstream_daily` was paused,
before it existed, or through a backfill. `clickstream_daily` then runs for each; a run that finds
its day already built from those versions skips. Nothing due: the task is skipped. The work lives
in `app/airflow/tasks.py` and `app/reconciliation.py`.
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import CronTriggerTimetable, dag, get_current_context, task

from app.airflow.assets import RECOMPUTED_DAYS, RECONCILIATION
from app.airflow.operators import batch_task_defaults
from app.settings import load_settings

SETTINGS = load_settings()


@dag(
    dag_id="clickstream_catch_up",
    schedule=CronTriggerTimetable(SETTINGS.airflow_catch_up_schedule, timezone="UTC"),
    start_date=pendulum.datetime(2017, 10, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=batch_task_defaults(),
    tags=["clickstream"],
    doc_md=__doc__,
)
def clickstream_catch_up() -> None:
    @task(inlets=[RECONCILIATION], outlets=[RECOMPUTED_DAYS])
    def announce_days_due(*, outlet_events: Any = None) -> list[str]:
        from app.airflow.tasks import announce, days_due, run_settings

        due = days_due(run_settings(get_current_context()))
        return announce(outlet_events[RECOMPUTED_DAYS], {"days_due": due}, "days_due")

    announce_days_due()


clickstream_catch_up()
