"""`SparkSubmitOperator` for the project's Spark jobs, with the project's conf filled in at run time.

The DAG names the job (`streaming_job.py`, `recompute_hours.py`) and its arguments; the Spark
properties (connector jars, metastore, folders) and the job's environment are taken from the
settings when the task runs, so parsing the DAG reads no setting and imports no Spark.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

from app.settings import REPO_ROOT

JOBS_DIR = REPO_ROOT / "spark_jobs"


class ClickstreamSparkSubmitOperator(SparkSubmitOperator):
    def __init__(self, *, job: str, **kwargs: Any) -> None:
        kwargs.setdefault("conn_id", "spark_default")
        kwargs.setdefault("name", f"clickstream-{job.removesuffix('.py').replace('_', '-')}")
        super().__init__(application=str(JOBS_DIR / job), spark_binary="spark-submit", **kwargs)

    def execute(self, context: Any) -> None:
        from app.orchestration import run_settings, spark_job_conf, spark_job_environment

        settings = run_settings(context)
        self.conf = {**spark_job_conf(settings), **(self.conf or {})}
        self.env_vars = {**spark_job_environment(settings), **(self.env_vars or {})}
        super().execute(context)
