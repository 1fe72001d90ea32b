"""`SparkSubmitOperator` for the project's Spark jobs, with the project's conf filled in at run time.

The DAG names the job (`streaming_job.py`, `recompute_hours.py`) and its arguments; the Spark
properties (connector jars, metastore, folders) and the job's environment are taken from the
settings when the task runs, so parsing the DAG reads no setting and imports no Spark.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

from app.spark_session import SPARK_JOBS_DIR


class ClickstreamSparkSubmitOperator(SparkSubmitOperator):
    """Runs one of `spark_jobs/` with the project's settings; with `skip_without_arguments`, a run
    whose (templated) arguments came out empty is skipped instead of starting Spark."""

    def __init__(self, *, job: str, skip_without_arguments: bool = False, **kwargs: Any) -> None:
        kwargs.setdefault("conn_id", "spark_default")
        kwargs.setdefault("name", f"clickstream-{job.removesuffix('.py').replace('_', '-')}")
        super().__init__(application=str(SPARK_JOBS_DIR / job), spark_binary="spark-submit", **kwargs)
        self.skip_without_arguments = skip_without_arguments

    def execute(self, context: Any) -> None:
        from app.orchestration import run_settings, spark_job_conf, spark_job_environment

        if self.skip_without_arguments and not self.application_args:
            from airflow.sdk.exceptions import AirflowSkipException

            raise AirflowSkipException("nothing to do: no arguments were given for this run")
        settings = run_settings(context)
        self.conf = {**spark_job_conf(settings), **(self.conf or {})}
        self.env_vars = {**spark_job_environment(settings), **(self.env_vars or {})}
        super().execute(context)


class DrainTopicsOperator(ClickstreamSparkSubmitOperator):
    """The streaming job with the available-now trigger, unless a long-running stream is active on
    the checkpoint: then it waits until that stream has passed the topics' end instead of starting
    a second job on the same checkpoint. Returns how the data got drained."""

    def __init__(self, *, wait_timeout: float = 3600.0, **kwargs: Any) -> None:
        super().__init__(job="streaming_job.py", application_args=["--trigger", "available-now"], **kwargs)
        self.wait_timeout = wait_timeout

    def execute(self, context: Any) -> dict[str, str]:  # type: ignore[override]
        from app.orchestration import run_settings, wait_for_running_stream

        drained_by = wait_for_running_stream(run_settings(context), timeout=self.wait_timeout)
        if drained_by is not None:
            self.log.info("not starting Spark: %s", drained_by)
            return {"drained_by": drained_by}
        super().execute(context)
        return {"drained_by": "this task"}
