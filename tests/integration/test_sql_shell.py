"""`make sql`: the README's example queries run in beeline on the Spark Thrift server, over the
sample this test lands in tables of its own, and give the same figures as Spark reading the tables
directly."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from app.producer.publisher import publish
from app.runtime.service import Service
from app.runtime.spark_thrift import SparkThriftServer
from app.settings import REPO_ROOT, Settings
from tests.integration.jobs import run_job, sample_pipeline

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


@pytest.fixture
def landed_sample(kafka: Service, metastore: Service, settings: Settings, tmp_path: Path) -> Settings:
    """The sample published and drained into a database of the test's own: the test needs no other
    test to have filled the shared tables, and passes alone and in any order."""
    own = sample_pipeline(settings, tmp_path / "pipeline")
    publish(own)
    run_job(own, "streaming_job.py", "--trigger", "available-now", log=tmp_path / "jobs.log")
    return own


@pytest.fixture
def thrift_server(landed_sample: Settings) -> Iterator[SparkThriftServer]:
    server = SparkThriftServer(landed_sample)
    try:
        yield server  # app.tools.sql_shell starts it
    finally:
        server.stop()


def readme_queries() -> list[str]:
    block = re.search(r"## Querying the tables.*?```sql\n(.*?)```", (REPO_ROOT / "README.md").read_text(), re.S)
    assert block, "the README has no SQL examples under 'Querying the tables'"
    return [statement.strip() for statement in block.group(1).split(";") if statement.strip()]


def test_the_readme_queries_run_in_make_sql(
    thrift_server: SparkThriftServer, landed_sample: Settings, spark: SparkSession, tmp_path: Path
) -> None:
    settings = landed_sample
    queries = readme_queries()
    assert len(queries) == 3
    script = tmp_path / "queries.sql"
    script.write_text(";\n".join(queries) + ";\n")
    shell = subprocess.run(
        [sys.executable, "-m", "app.tools.sql_shell", "--outputformat=csv2", "-f", str(script)],
        cwd=REPO_ROOT,
        env={**os.environ, **settings.environment()},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert shell.returncode == 0, shell.stdout[-2000:] + shell.stderr[-3000:]
    assert thrift_server.status().running
    # beeline echoes its prompt ("0: jdbc:hive2://...> ", ". . .> " for continued lines) before each result
    lines = [line.rpartition("> ")[2] for line in shell.stdout.splitlines()]
    # the first query's rows: dt,hour,clicks; their sum is every click in the raw table
    spark.sql(f"REFRESH TABLE `{settings.hive_database}`.raw_clicks")
    raw_clicks = spark.table(f"`{settings.hive_database}`.raw_clicks").count()
    per_hour = [line.split(",") for line in lines if re.fullmatch(r"\d{4}-\d{2}-\d{2},\d+,\d+", line)]
    assert per_hour and sum(int(clicks) for _, _, clicks in per_hour) == raw_clicks
    assert "article_id,category_id,clicks" in lines and "click_device_group,click_referrer_type,clicks" in lines
