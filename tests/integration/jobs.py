"""For the integration tests: the sample data, Spark jobs run as the scheduler runs them (spark-submit
in a process group of their own), the streaming checkpoint's batches seen from outside, and the
tables read back through Spark."""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from app.airflow.tasks import spark_job_environment
from app.settings import REPO_ROOT, Settings
from app.spark_session import SPARK_JOBS_DIR, spark_submit_command
from app.storage import Location
from tests.conftest import own_pipeline
from tests.integration.expected import normalise

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

SAMPLE = REPO_ROOT / "app" / "data"
CLICK_FILES = sorted(SAMPLE.glob("clicks_hour_*.csv"))
AGGREGATES = ("article_hourly", "category_hourly", "context_hourly", "sessions")


def sample_pipeline(settings: Settings, folder: Path) -> Settings:
    """A pipeline of its own (topics, tables, checkpoint) under `folder`, the sample in its data folder."""
    own = own_pipeline(settings, folder)
    for path in [*CLICK_FILES, SAMPLE / "articles_metadata.csv"]:
        shutil.copy(path, own.producer_data_root_directory / path.name)
    return own


def start_job(
    settings: Settings, script: str, *args: str, log: Path, obey_file_permissions: bool = False
) -> subprocess.Popen[bytes]:
    command = spark_submit_command(settings, str(SPARK_JOBS_DIR / script), list(args))
    if obey_file_permissions and os.geteuid() == 0:
        # root ignores permission bits; without these two capabilities it obeys them like any user
        command = ["capsh", "--drop=cap_dac_override,cap_dac_read_search", "--", "-c", shlex.join(command)]
    with open(log, "ab") as handle:
        return subprocess.Popen(
            command,
            env={**os.environ, **spark_job_environment(settings)},
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def run_job(settings: Settings, script: str, *args: str, log: Path, timeout: float = 600) -> None:
    job = start_job(settings, script, *args, log=log)
    try:
        code = job.wait(timeout)
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
            job.wait()
    assert code == 0, f"{script} {' '.join(args)} exited {code}:\n{log.read_text()[-4000:]}"


def failing_job(settings: Settings, log: Path, obey_file_permissions: bool = False) -> tuple[int, str]:
    """Runs the available-now job that is expected to fail: its exit code and its new log lines."""
    start = log.stat().st_size if log.exists() else 0
    job = start_job(
        settings, "streaming_job.py", "--trigger", "available-now", log=log, obey_file_permissions=obey_file_permissions
    )
    try:
        code = job.wait(300)
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
    return code, log.read_bytes()[start:].decode(errors="replace")


def committed_batches(checkpoint: Location) -> set[int]:
    return {int(entry.name) for entry in (checkpoint / "streaming" / "commits").entries() if entry.name.isdigit()}


def started_batches(checkpoint: Location) -> set[int]:
    return {int(entry.name) for entry in (checkpoint / "streaming" / "offsets").entries() if entry.name.isdigit()}


def table_rows(spark: SparkSession, settings: Settings, table: str) -> list[Any]:
    name = f"`{settings.hive_database}`.`{table}`"
    spark.sql(f"REFRESH TABLE {name}")
    return spark.table(name).collect()


def aggregates(
    spark: SparkSession, settings: Settings, hours: set[tuple[str, int]] | None = None
) -> dict[str, set[Any]]:
    result = {}
    for table in AGGREGATES:
        rows = normalise(table_rows(spark, settings, table))
        result[table] = {row for row in rows if hours is None or (row[-2], row[-1]) in hours}
    return result


def shifted_copy(source: Path, target: Path, days: int) -> None:
    """The same clicks `days` later (new hours for the tables), under another file name."""
    frame = pd.read_csv(source)
    shift = days * 86_400_000
    frame["click_timestamp"] += shift
    frame["session_start"] += shift
    frame["session_id"] += shift  # distinct sessions
    frame.to_csv(target, index=False)


def clicks_of_a_day(folder: Path, day: str, hours: list[int], per_hour: int = 50) -> list[Path]:
    """One click file per hour of `day` (UTC), `per_hour` clicks each, made of the sample's clicks of
    2017-10-01T03 moved into that hour; users and sessions recur across hours (the same sessions a
    fixed number of days later), so a day's distinct counts are less than the sums of its hours."""
    source = pd.read_csv(CLICK_FILES[0])
    moment = pd.to_datetime(source["click_timestamp"], unit="ms", utc=True)
    source = source[moment.dt.floor("h") == pd.Timestamp("2017-10-01T03:00", tz="UTC")].reset_index(drop=True)
    origin = int(pd.Timestamp("2017-10-01T03:00", tz="UTC").timestamp() * 1000)
    day_start = int(pd.Timestamp(day, tz="UTC").timestamp() * 1000)
    written = []
    for hour in hours:
        rows = source.iloc[(hour * per_hour) % (len(source) - per_hour) :][:per_hour].copy()
        shift = day_start + hour * 3_600_000 - origin
        rows["click_timestamp"] += shift
        rows["session_start"] += shift
        rows["session_id"] += day_start - origin  # the same sessions in every hour of the day
        path = folder / f"clicks_hour_{day.replace('-', '')}_{hour:02d}.csv"
        rows.to_csv(path, index=False)
        written.append(path)
    return written
