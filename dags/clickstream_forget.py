"""clickstream_forget: forget users everywhere the tables keep their clicks (an erasure request).

Triggered from the UI (or `make forget USER=...`, which runs the same job without Airflow) with
the user ids. `users_to_forget` refuses an empty or malformed id before anything starts;
`forget_users` runs `spark_jobs/forget_users.py`, which takes the stream's lock (it waits for a
drain to finish), records the request in `erasures` (the keyed hash of each user, never the id; from
then on their clicks never enter `raw_clicks` again), removes their clicks from the raw partitions
that held them, recomputes those hours and drops their sessions, and refuses an id without clicks
that was never forgotten. `check_erased_hours` checks the rewritten hours against the ledger
(`hour_reconciliation` counts the erased clicks); the balanced hours are announced to
`clickstream_landed_hours` and the days they belong to, to `clickstream_recomputed_days`, so that
`clickstream_daily` rebuilds them. The work lives in `app/erasure.py` and `spark_jobs/erasure.py`.
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import Param, dag, get_current_context, task

from app.airflow.assets import ERASURES, HOURLY_TABLES, LANDED_HOURS, RECOMPUTED_DAYS, RECONCILIATION
from app.airflow.operators import BatchSparkJobOperator, batch_task_defaults


@dag(
    dag_id="clickstream_forget",
    schedule=None,  # on request only
    start_date=pendulum.datetime(2017, 10, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=batch_task_defaults(),
    tags=["clickstream"],
    params={
        "users": Param(
            "",
            type="string",
            title="User ids",
            description="The user ids to forget, separated by commas or spaces, like 123 or 123,456",
        ),
    },
    doc_md=__doc__,
)
def clickstream_forget() -> None:
    # not retried: a bad id stays bad
    @task(retries=0)
    def users_to_forget() -> list[str]:
        from app.airflow.tasks import forget_arguments

        return forget_arguments(get_current_context()["params"])

    arguments = users_to_forget()
    # not retried: an id without clicks is refused by the job, and stays refused; a request that
    # failed otherwise is asked again by whoever asked (the job is safe to run again)
    forget = BatchSparkJobOperator(
        task_id="forget_users",
        job="forget_users.py",
        application_args=arguments,
        retries=0,
        inlets=HOURLY_TABLES,
        outlets=[*HOURLY_TABLES, ERASURES],
    )

    @task(inlets=[ERASURES, *HOURLY_TABLES], outlets=[RECONCILIATION], retries=0)
    def check_erased_hours(job_arguments: list[str]) -> dict[str, object]:
        from app.airflow.tasks import check_erased_hours, run_settings

        return check_erased_hours(run_settings(get_current_context()), job_arguments)

    @task(outlets=[LANDED_HOURS])
    def announce_landed_hours(check_result: dict[str, object], *, outlet_events: Any = None) -> list[str]:
        from app.airflow.tasks import announce

        return announce(outlet_events[LANDED_HOURS], check_result, "landed_hours")

    @task(outlets=[RECOMPUTED_DAYS])
    def announce_recomputed_days(check_result: dict[str, object], *, outlet_events: Any = None) -> list[str]:
        from app.airflow.tasks import announce

        return announce(outlet_events[RECOMPUTED_DAYS], check_result, "recomputed_days")

    check = check_erased_hours(arguments)  # type: ignore[arg-type]  # an XComArg, resolved when the task runs
    forget >> check
    announce_landed_hours(check)  # type: ignore[arg-type]
    announce_recomputed_days(check)  # type: ignore[arg-type]


clickstream_forget()
