"""Running the project's Spark applications with spark-submit from Python (the demo, the CLI).

Airflow runs the same applications through `SparkSubmitOperator`; this is the plain path for
everything outside Airflow. The job's output goes to a log file; a failure raises
`SparkJobError` with the log's last lines.
"""

from __future__ import annotations

import logging
import os
import subprocess
from pathlib import Path

from app.runtime.process import log_tail
from app.runtime.services import settings_environment
from app.settings import REPO_ROOT, Settings
from app.spark_session import spark_environment, spark_submit_command

log = logging.getLogger(__name__)

JOBS_DIR = REPO_ROOT / "spark_jobs"


class SparkJobError(RuntimeError):
    """A Spark application exited with an error."""


def job_environment(settings: Settings) -> dict[str, str]:
    """What a spark-submit process needs: the settings, Spark's variables, the project on the path."""
    return {**os.environ, **settings_environment(settings), **spark_environment(settings), "PYTHONPATH": str(REPO_ROOT)}


def run_spark_job(settings: Settings, script: str, arguments: list[str], log_file: Path, timeout: float = 3600) -> None:
    command = spark_submit_command(settings, str(JOBS_DIR / script), arguments)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    log.info("running %s %s (log: %s)", script, " ".join(arguments), log_file)
    with open(log_file, "ab") as handle:
        finished = subprocess.run(
            command,
            env=job_environment(settings),
            stdout=handle,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            check=False,
        )
    if finished.returncode != 0:
        raise SparkJobError(
            f"{script} exited with {finished.returncode}; last lines of {log_file}:\n{log_tail(log_file, 25)}"
        )
