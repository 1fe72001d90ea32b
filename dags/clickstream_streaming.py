"""clickstream_streaming: the long-running streaming job, started and stopped from the Airflow UI.

Trigger it to run the streaming job with the processing-time trigger (`SPARK_TRIGGER_INTERVAL`):
both topics land in the raw tables and the hours they touch are recomputed, batch after batch,
until the run is marked failed or success in the UI (which stops the job). At most one run at a
time; a retry resumes from the checkpoint. While it runs, `clickstream_hourly` publishes as usual
and its drain waits for this stream to pass the topics' end instead of starting a second job.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import dag

from app.airflow.alerts import WebhookNotifier
from app.airflow.assets import ARTICLES_TOPIC, CLICKS_TOPIC, HOURLY_TABLES
from app.airflow.operators import ClickstreamSparkSubmitOperator


@dag(
    dag_id="clickstream_streaming",
    schedule=None,
    start_date=pendulum.datetime(2017, 10, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={"on_failure_callback": WebhookNotifier()},  # announced to ALERT_WEBHOOK_URL
    tags=["clickstream"],
    doc_md=__doc__,
)
def clickstream_streaming() -> None:
    ClickstreamSparkSubmitOperator(
        task_id="run_stream",
        job="streaming_job.py",
        application_args=["--trigger", "processing-time"],
        retries=3,
        retry_delay=timedelta(seconds=30),
        execution_timeout=None,  # runs until stopped from the UI; a failed stream is retried
        inlets=[CLICKS_TOPIC, ARTICLES_TOPIC],
        outlets=HOURLY_TABLES,
    )


clickstream_streaming()
