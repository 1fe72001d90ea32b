"""What the DAG files share: `SparkSubmitOperator` for the project's Spark jobs (the project's conf
filled in at run time), the tasks' defaults and the form of an optional text parameter.

The DAG names the job (`streaming_job.py`, `recompute_hours.py`) and its arguments; the Spark
properties (connector jars, metastore, folders) and the job's environment are taken from the
settings when the task runs, so parsing the DAG reads no setting and imports no Spark.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.sdk import Param

from app.airflow.alerts import WebhookNotifier
from app.airflow.pools import SPARK_POOL
from app.spark_session import SPARK_JOBS_DIR


def batch_task_defaults() -> dict[str, Any]:
    """The defaults of the tasks of the hourly and daily DAGs.

    Every task can run again safely (publishing skips what the ledger has, draining resumes from
    the checkpoint, recomputing and building replace partitions): a task lost with its worker or
    scheduler is retried. No task outlasts its timeout, whatever hangs (a Spark job, a broker that
    stopped answering): 30 minutes, where a hundred times the Globo set (100 M records) publishes in
    about ten at the producer's measured rate (docs/benchmarks.md). A task that fails for good
    (after its retries) is announced to ALERT_WEBHOOK_URL."""
    return {
        "retries": 2,
        "retry_delay": timedelta(seconds=20),
        "execution_timeout": timedelta(minutes=30),
        "on_failure_callback": WebhookNotifier(),
    }


def optional_text(title: str, description: str, pattern: str | None = None) -> Param:
    """A parameter that may be left empty (null or text), so the UI's Trigger form can be sent
    empty; when given, it must match `pattern` (a regular expression)."""
    if pattern is None:
        return Param(None, type=["null", "string"], title=title, description=description)
    return Param(None, type=["null", "string"], title=title, description=description, pattern=f"({pattern})|^$")


class ClickstreamSparkSubmitOperator(SparkSubmitOperator):
    """Runs one of `spark_jobs/` with the project's settings; with `skip_without_arguments`, a run
    whose (templated) arguments came out empty is skipped instead of starting Spark."""

    def __init__(self, *, job: str, skip_without_arguments: bool = False, **kwargs: Any) -> None:
        kwargs.setdefault("conn_id", "spark_default")
        kwargs.setdefault("name", f"clickstream-{job.removesuffix('.py').replace('_', '-')}")
        super().__init__(application=str(SPARK_JOBS_DIR / job), spark_binary="spark-submit", **kwargs)
        self.skip_without_arguments = skip_without_arguments

    def execute(self, context: Any) -> None:
        from app.airflow.tasks import run_settings, spark_job_conf, spark_job_environment

        if self.skip_without_arguments and not self.application_args:
            from airflow.sdk.exceptions import AirflowSkipException

            raise AirflowSkipException("nothing to do: no arguments were given for this run")
        settings = run_settings(context)
        self.conf = {**spark_job_conf(settings), **(self.conf or {})}
        self.env_vars = {**spark_job_environment(settings), **(self.env_vars or {})}
        super().execute(context)


class BatchSparkJobOperator(ClickstreamSparkSubmitOperator):
    """A Spark job that runs to its end (draining, recomputing, building days): in `SPARK_POOL`, one
    such job at a time (one streaming checkpoint, a laptop's cores). The long-running stream stays
    out of the pool, or every batch job would wait behind it."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(pool=SPARK_POOL, **kwargs)


class DrainTopicsOperator(BatchSparkJobOperator):
    """The streaming job with the available-now trigger, unless a long-running stream is active on
    the checkpoint: then the task defers (holding no worker or pool slot) until that stream has
    passed the topics' end, instead of starting a second job on the same checkpoint; if the stream
    stops first, the task drains. Returns how the data got drained."""

    def __init__(self, *, wait_timeout: float = 3600.0, **kwargs: Any) -> None:
        super().__init__(job="streaming_job.py", application_args=["--trigger", "available-now"], **kwargs)
        self.wait_timeout = wait_timeout

    def execute(self, context: Any) -> dict[str, str]:  # type: ignore[override]
        from app.airflow.tasks import DRAIN_HERE, DRAINED, drain_state, run_settings, topics_end
        from app.airflow.triggers import StreamPassesTopicsTrigger

        settings = run_settings(context)
        target = topics_end(settings)
        state = drain_state(settings, target)
        if state == DRAINED:
            self.log.info("not starting Spark: the checkpoint is already past the topics' end")
            return {"drained_by": "checkpoint already past the topics' end"}
        if state == DRAIN_HERE:
            super().execute(context)
            return {"drained_by": "this task"}
        self.log.info("a streaming job runs on the checkpoint: deferring until it passes the topics' end %s", target)
        self.defer(
            trigger=StreamPassesTopicsTrigger(
                {topic: {str(p): end for p, end in ends.items()} for topic, ends in target.items()},
                str(settings.check_point_location),
            ),
            method_name="stream_passed",
            timeout=timedelta(seconds=self.wait_timeout),
        )

    def stream_passed(self, context: Any, event: dict[str, Any]) -> dict[str, str]:
        """Back from the trigger: the stream passed the topics' end, or stopped before (then drain)."""
        from app.airflow.tasks import DRAINED

        if event["state"] == DRAINED:
            self.log.info("not starting Spark: the running stream passed the topics' end")
            return {"drained_by": "running stream"}
        self.log.info("the streaming job stopped before it passed the topics' end: draining")
        return self.execute(context)
