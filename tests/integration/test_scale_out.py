"""The pipeline laid out as for several hosts: Airflow with the CeleryExecutor (Redis, two workers),
and the lake, warehouse and checkpoints on HDFS (or on the S3 store, SeaweedFS, with
`CLICKSTREAM_TEST_SCALE_OUT_STORE=s3`: the suite runs the S3 tables through the drain and compaction
tests, and has no room for a second Airflow). An hourly run over the sample through the real
Airflow: its tasks run on both workers (recorded on the task instances), its tables are on that store
alone, and they equal the independent computation from the CSVs. Then a worker is killed while it
publishes a file: the task is retried on the other worker, and the file lands once.

This Airflow is a second deployment beside the session's (its own state folder, API port, Redis and
metadata database); it shares the session's Kafka, PostgreSQL server, metastore and HDFS."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import replace
from typing import TYPE_CHECKING

import pytest
from psycopg2 import sql

from app.airflow.client import AirflowClient
from app.runtime.airflow_server import Airflow
from app.runtime.postgres import AIRFLOW_DATABASE, PostgresServer
from app.runtime.redis import Redis
from app.runtime.service import Service
from app.settings import REPO_ROOT, Settings, s3_credentials
from tests.conftest import free_ports, own_pipeline, reachable_folder
from tests.integration.conftest import admin_client
from tests.integration.expected import expected_tables
from tests.integration.jobs import aggregates, shifted_copy, table_rows
from tests.integration.test_dag_run import kill_process_group

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

SAMPLE = REPO_ROOT / "app" / "data"
DAG = "clickstream_hourly"
STORE = os.environ.get("CLICKSTREAM_TEST_SCALE_OUT_STORE", "hdfs")  # or "s3"


def celery_database(settings: Settings) -> str:
    """A metadata database of its own on the session's PostgreSQL, owned by Airflow's role; its URL."""
    postgres = PostgresServer(settings)
    name = f"{AIRFLOW_DATABASE}_celery_{settings.hive_database.rsplit('_', 1)[-1]}"
    with closing(postgres.connect()) as connection, connection.cursor() as cursor:
        cursor.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(AIRFLOW_DATABASE))
        )
    return postgres.sqlalchemy_url(AIRFLOW_DATABASE).rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture(scope="module")
def scaled_out(
    kafka: Service,
    postgres: Service,
    metastore: Service,
    settings: Settings,
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> Iterator[Settings]:
    """Settings of a pipeline of its own on HDFS (or S3), with its own Airflow on Celery workers running."""
    if STORE not in ("hdfs", "s3"):
        raise ValueError(f"CLICKSTREAM_TEST_SCALE_OUT_STORE={STORE!r}: hdfs or s3")
    request.getfixturevalue(STORE)
    folder = tmp_path_factory.mktemp("scale-out")
    own = own_pipeline(settings, folder, STORE)
    api_port, redis_port = free_ports(2)
    own = replace(
        own,
        state_dir=reachable_folder("clickstream-celery-state-"),
        airflow_api_port=api_port,
        redis_port=redis_port,
        airflow_executor="CeleryExecutor",
        airflow_celery_workers=2,
        airflow_database_url=celery_database(own),
        producer_item_wait_time=0.002,  # a file of 1,400 clicks takes seconds to publish: time to kill its worker
    )
    if STORE == "s3":  # the session's store's keys, which a deployment gives every host in `.env.local`
        key, secret = s3_credentials(settings)
        own = replace(own, s3_access_key=key, s3_secret_key=secret)
    services = [Redis(own), Airflow(own)]
    # a deployment keeps its secrets in `.env.local`, which every process reads; this test's secret
    # reaches Airflow's processes (and their tasks' Spark jobs, which take the stream lock in that
    # database) through their environment instead
    with pytest.MonkeyPatch.context() as environment:
        environment.setenv("AIRFLOW_DATABASE_URL", own.airflow_database_url)
        if STORE == "s3":
            environment.setenv("S3_ACCESS_KEY", own.s3_access_key)
            environment.setenv("S3_SECRET_KEY", own.s3_secret_key)
        try:
            for service in services:
                service.start()
            yield own
        finally:
            for service in reversed(services):
                service.stop()
            shutil.rmtree(own.state_dir, ignore_errors=True)


def test_an_hourly_run_on_celery_workers_with_the_tables_on_hdfs_or_s3(
    scaled_out: Settings, spark: SparkSession, tmp_path_factory: pytest.TempPathFactory
) -> None:
    own = scaled_out
    client: AirflowClient = admin_client(own)
    data = tmp_path_factory.mktemp("sample")
    for path in SAMPLE.glob("*.csv"):
        shutil.copy(path, data / path.name)
    client.wait_for_dag(DAG)
    client.unpause(DAG)
    run_id = client.trigger(DAG, {"data_dir": str(data)})
    outcome = client.wait_for_run(DAG, run_id, timeout=900)
    assert outcome.state == "success", outcome.task_states

    instances = client.call("GET", f"/api/v2/dags/{DAG}/dagRuns/{run_id}/taskInstances")["task_instances"]
    ran = [ti for ti in instances if ti["state"] == "success"]
    workers = {str(ti["hostname"]).split("@", 1)[0] for ti in ran}
    assert workers == {"worker-1", "worker-2"}, {ti["task_id"]: ti["hostname"] for ti in ran}

    assert len(table_rows(spark, own, "raw_clicks")) == 4208
    expected = expected_tables(sorted(SAMPLE.glob("clicks_hour_*.csv")), SAMPLE / "articles_metadata.csv")
    assert aggregates(spark, own) == expected
    lake = own.parquet_destination_path
    assert lake.scheme == {"hdfs": "hdfs", "s3": "s3a"}[STORE] and (lake / "raw_clicks").entries()
    assert not (own.state_dir / "lake").exists() and not (own.state_dir / "checkpoints").exists()


def test_a_worker_killed_while_it_publishes_a_file_the_file_lands_once_after_a_retry_on_the_other(
    scaled_out: Settings, spark: SparkSession, tmp_path_factory: pytest.TempPathFactory
) -> None:
    import pandas as pd

    own = scaled_out
    client = admin_client(own)
    data = tmp_path_factory.mktemp("killed-worker")
    new_file = data / "clicks_hour_960.csv"
    shifted_copy(SAMPLE / "clicks_hour_001.csv", new_file, days=63)  # hours no other run of this pipeline has
    rows_before = len(table_rows(spark, own, "raw_clicks"))
    run_id = client.trigger(DAG, {"data_dir": str(data)})

    deadline = time.monotonic() + 300
    publishing = {}
    while time.monotonic() < deadline:
        publishing = client.call("GET", f"/api/v2/dags/{DAG}/dagRuns/{run_id}/taskInstances/publish_clicks")
        if publishing["state"] == "running" and publishing.get("hostname"):
            break
        time.sleep(0.5)
    assert publishing.get("state") == "running", publishing
    worker = str(publishing["hostname"]).split("@", 1)[0]
    process = next(p for p in Airflow(own).processes() if p.name == f"airflow-celery-{worker}")
    kill_process_group(process.read_pid())  # the worker, its pool and the task it runs, as a crashed host

    outcome = client.wait_for_run(DAG, run_id, timeout=900)
    assert outcome.state == "success", outcome.task_states
    retried = client.call("GET", f"/api/v2/dags/{DAG}/dagRuns/{run_id}/taskInstances/publish_clicks")
    assert retried["try_number"] >= 2 and not str(retried["hostname"]).startswith(f"{worker}@"), retried
    raw = table_rows(spark, own, "raw_clicks")
    assert len(raw) == rows_before + len(pd.read_csv(new_file))  # every click of the file, once
    assert len({(r.kafka_partition, r.kafka_offset) for r in raw}) == len(raw)
