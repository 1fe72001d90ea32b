"""clickstream_hourly: new CSV files -> Kafka -> Spark -> the hour's Hive partitions.

Every hour (and for each hour of a backfill): wait for files that are not published yet, publish
the article files and then the click files (exactly once), drain both topics with the streaming
job (available-now), and recompute the run's hours with the batch job. Triggered from the UI it
takes a data folder and a range of hours to recompute. The work lives in `app/` and `spark_jobs/`.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Asset, Param, PokeReturnValue, dag, get_current_context, task

from app.airflow_operators import ClickstreamSparkSubmitOperator
from app.runtime.services import SPARK_POOL  # created by `make up`, one slot

CLICKS_TOPIC = Asset("kafka://clickstream/clicks")
ARTICLES_TOPIC = Asset("kafka://clickstream/articles")
HOURLY_TABLES = [
    Asset(f"hive://clickstream/{table}")
    for table in ("raw_clicks", "articles", "article_hourly", "category_hourly", "context_hourly", "sessions")
]
HOUR_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}$"


@dag(
    dag_id="clickstream_hourly",
    schedule="@hourly",
    start_date=pendulum.datetime(2017, 10, 1, tz="UTC"),
    catchup=False,
    max_active_runs=3,  # a run waiting for files must not hold back a backfill or a UI trigger
    tags=["clickstream"],
    params={
        "data_dir": Param("", type="string", description="Data folder (default: PRODUCER_DATA_ROOT_DIRECTORY)"),
        "recompute_from": Param(
            "",
            type="string",
            pattern=f"({HOUR_PATTERN})|^$",
            description="First UTC hour to recompute, e.g. 2017-10-01T00 (default: the run's hour)",
        ),
        "recompute_to": Param(
            "", type="string", pattern=f"({HOUR_PATTERN})|^$", description="Last UTC hour to recompute, inclusive"
        ),
    },
    doc_md=__doc__,
)
def clickstream_hourly() -> None:
    @task.sensor(task_id="wait_for_new_files", poke_interval=30, timeout=10 * 60, mode="reschedule", soft_fail=True)
    def wait_for_new_files() -> PokeReturnValue:
        from app.orchestration import pending_files, run_settings

        context = get_current_context()
        pending = pending_files(run_settings(context))
        # a backfill, or a run asked to recompute hours, goes on without new files
        go_on = bool(pending) or context["dag_run"].run_type in ("backfill", "manual")
        return PokeReturnValue(is_done=go_on, xcom_value=pending)

    @task(outlets=[ARTICLES_TOPIC])
    def publish_articles() -> dict[str, object]:
        from app.orchestration import publish_kind, run_settings

        return publish_kind(run_settings(get_current_context()), "articles")

    @task(outlets=[CLICKS_TOPIC])
    def publish_clicks() -> dict[str, object]:
        from app.orchestration import publish_kind, run_settings

        return publish_kind(run_settings(get_current_context()), "clicks")

    @task
    def hours_to_recompute() -> list[str]:
        from airflow.sdk.exceptions import AirflowSkipException

        from app.orchestration import recompute_range

        context = get_current_context()
        hours = recompute_range(context["params"], context.get("data_interval_start"), context.get("data_interval_end"))
        if hours is None:
            raise AirflowSkipException("no hours given and no data interval: the drain recomputed what it touched")
        return ["--from", hours[0], "--to", hours[1]]

    drain = ClickstreamSparkSubmitOperator(
        task_id="drain_topics",
        job="streaming_job.py",
        application_args=["--trigger", "available-now"],
        pool=SPARK_POOL,  # one Spark job at a time: one checkpoint, and a 2-core laptop
        inlets=[CLICKS_TOPIC, ARTICLES_TOPIC],
        outlets=HOURLY_TABLES,
    )
    hours = hours_to_recompute()
    recompute = ClickstreamSparkSubmitOperator(
        task_id="recompute_hours",
        job="recompute_hours.py",
        application_args=hours,
        pool=SPARK_POOL,
        outlets=HOURLY_TABLES,
    )
    wait_for_new_files() >> publish_articles() >> publish_clicks() >> drain >> hours >> recompute


clickstream_hourly()
