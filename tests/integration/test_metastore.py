"""The Hive Metastore on the project's PostgreSQL (Debian's package), restarted while the streaming
job runs."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import replace
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from app.checkpoint import committed_offsets, offsets_behind
from app.kafka_io import end_offsets
from app.parquet_folders import parquet_files
from app.pipeline_view import HiveCatalog
from app.producer.publisher import publish
from app.runtime.hive_metastore import HiveMetastore
from app.runtime.postgres import PostgresServer
from app.runtime.service import Service
from app.settings import Settings
from app.storage import Location
from app.table_checks import check_tables
from tests.conftest import free_ports, own_pipeline, reachable_folder
from tests.integration.expected import expected_tables, normalise
from tests.integration.jobs import CLICK_FILES, SAMPLE, start_job


@pytest.fixture(scope="module")
def on_postgres(kafka: Service, settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """A pipeline of its own with a metastore (and PostgreSQL) of its own, set up as `make up`
    does: the catalogue in database `metastore` of the local PostgreSQL."""
    state = reachable_folder("clickstream-postgres-test-")
    database_port, metastore_port = free_ports(2)
    own = replace(
        own_pipeline(settings, tmp_path_factory.mktemp("on-postgres")),
        state_dir=state,
        hive_warehouse_dir=Location.local(state / "warehouse"),
        hive_metastore_port=metastore_port,
        hive_metastore_db_url="",
        postgres_port=database_port,
    )
    database, metastore = PostgresServer(own), HiveMetastore(own)
    try:
        database.start()
        metastore.start()
        yield own
    finally:
        metastore.stop()
        database.stop()


def catalogue_tables(settings: Settings) -> list[str]:
    """The table names in the metastore's catalogue, read from PostgreSQL itself."""
    with closing(PostgresServer(settings).connect("metastore")) as connection, connection.cursor() as cursor:
        cursor.execute('SELECT "TBL_NAME" FROM "TBLS" ORDER BY 1')
        return [str(row[0]) for row in cursor.fetchall()]


def hive_rows(settings: Settings, table: str) -> set[tuple[Any, ...]]:
    """A partitioned table's rows as a reader without Spark sees them: partitions from the metastore,
    rows from their Parquet files, the partition values (dt, hour) last."""
    rows = []
    for name, location in HiveCatalog(settings).locations()[table].items():
        values = dict(part.split("=", 1) for part in name.split("/"))
        for path in parquet_files(location):
            for row in pq.read_table(path).to_pylist():
                rows.append((*row.values(), values["dt"], int(values["hour"])))
    return normalise(rows)


def wait_until_drained(settings: Settings, stream: subprocess.Popen[bytes], log: Path, timeout: float = 240) -> None:
    target = end_offsets(settings, [settings.kafka_topic, settings.kafka_metadata_topic])
    deadline = time.monotonic() + timeout
    while any(offsets_behind(target, committed_offsets(settings)).values()):
        assert stream.poll() is None, f"the stream ended ({stream.returncode}):\n{log.read_text()[-4000:]}"
        assert time.monotonic() < deadline, f"not drained in {timeout:.0f} s:\n{log.read_text()[-4000:]}"
        time.sleep(1)


def test_the_pipeline_on_a_postgres_metastore_survives_a_metastore_restart(
    on_postgres: Settings, tmp_path: Path
) -> None:
    own, log = on_postgres, tmp_path / "stream.log"
    first, second = CLICK_FILES[:2]
    for path in (first, SAMPLE / "articles_metadata.csv"):
        shutil.copy(path, own.producer_data_root_directory / path.name)
    publish(own)
    stream = start_job(own, "streaming_job.py", "--trigger", "processing-time", "--interval", "2 seconds", log=log)
    try:
        wait_until_drained(own, stream, log)
        assert {"raw_clicks", "article_hourly", "sessions"} <= set(catalogue_tables(own))

        metastore = HiveMetastore(own)
        metastore.stop()
        shutil.copy(second, own.producer_data_root_directory / second.name)
        publish(own)
        time.sleep(10)  # micro-batches come due while the metastore is away
        metastore.start()
        wait_until_drained(own, stream, log)
        assert stream.poll() is None, "the stream should have waited for the metastore"
        waited = [line for line in log.read_text().splitlines() if "it answers again" in line]
        assert waited and f"the Hive Metastore at {own.hive_metastore_uri}" in waited[0], waited
    finally:
        if stream.poll() is None:
            os.killpg(stream.pid, signal.SIGTERM)
            stream.wait(60)

    report = check_tables(own)
    assert report.problems == [] and report.raw_clicks == 1883 + 1415, report
    expected = expected_tables([first, second], SAMPLE / "articles_metadata.csv")
    for table in ("article_hourly", "category_hourly", "context_hourly"):
        assert hive_rows(own, table) == expected[table], table
