"""Scaling out: the same Spark jobs on a Spark standalone cluster (a master and a worker started by
the project from pyspark's own Spark), submitted by the DAG's `SparkSubmitOperator` with
`spark://127.0.0.1:<port>`, give exactly the tables that local mode gives: the independent
computation that local mode's tables are checked against everywhere else."""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from app.airflow.operators import ClickstreamSparkSubmitOperator
from app.producer.publisher import publish
from app.runtime.service import Service
from app.runtime.spark_cluster import SparkCluster
from app.settings import Settings
from tests.conftest import free_ports, own_pipeline
from tests.integration.expected import expected_tables
from tests.integration.jobs import CLICK_FILES, SAMPLE, aggregates, table_rows

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

JOBS = [
    ("streaming_job.py", ["--trigger", "available-now"]),
    ("recompute_hours.py", ["--from", "2017-10-01T00", "--to", "2017-10-03T23"]),
]


def with_sample(settings: Settings) -> Settings:
    for path in [*CLICK_FILES, SAMPLE / "articles_metadata.csv"]:
        shutil.copy(path, settings.producer_data_root_directory / path.name)
    publish(settings)
    return settings


def test_jobs_on_a_standalone_cluster_give_the_local_results(
    kafka: Service,
    metastore: Service,
    settings: Settings,
    spark: SparkSession,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (master_port,) = free_ports(1)
    cluster = with_sample(
        replace(own_pipeline(settings, tmp_path / "cluster"), spark_master=f"spark://127.0.0.1:{master_port}")
    )

    # the operator reads the settings and both connections from the environment, as in Airflow
    for variable, value in cluster.environment().items():
        monkeypatch.setenv(variable, value)
    monkeypatch.setenv("AIRFLOW_CONN_SPARK_DEFAULT", f'{{"conn_type": "spark", "host": "{cluster.spark_master}"}}')
    monkeypatch.setenv(
        "AIRFLOW_CONN_KAFKA_DEFAULT",
        f'{{"conn_type": "kafka", "extra": {{"bootstrap.servers": "{cluster.kafka_servers}"}}}}',
    )
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}:{os.environ['PATH']}")  # spark-submit
    spark_cluster = SparkCluster(cluster)
    try:
        spark_cluster.start()
        for script, arguments in JOBS:
            ClickstreamSparkSubmitOperator(task_id=script, job=script, application_args=arguments).execute(
                {"params": {}}
            )
        master_log = (cluster.logs_dir / "spark-master.log").read_text()
    finally:
        spark_cluster.stop()

    for name in ("clickstream-streaming", "clickstream-recompute-hours"):
        assert f"Registering app {name}" in master_log  # they really ran on the cluster
    raw = table_rows(spark, cluster, "raw_clicks")
    assert len(raw) == len({(r.kafka_partition, r.kafka_offset) for r in raw}) == 4208
    assert aggregates(spark, cluster) == expected_tables(CLICK_FILES, SAMPLE / "articles_metadata.csv")
