"""The write path of the tables (`spark_jobs/tables.py`, `spark_jobs/pipeline.py`) on the real
metastore: replayed micro-batches add nothing, an article change recomputes exactly the hours it
was clicked in, and compaction merges files without losing or doubling a row.

Micro-batches are handed to `Pipeline.land_batch` as Kafka-shaped DataFrames made from the sample
files, so each test says exactly which records a batch holds and which batch id it has."""

from __future__ import annotations

import csv
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from app.checkpoint import unsettled_partitions
from app.parquet_folders import folder_stats, folders_holding, parquet_files
from app.runtime.service import Service
from app.schemas import ARTICLES, CLICKS, HEADER_FILE_VERSION, HEADER_SOURCE_FILE, HEADER_SOURCE_LINE
from app.settings import Settings
from app.storage import Location
from tests.conftest import own_pipeline
from tests.integration.expected import expected_tables
from tests.integration.jobs import SAMPLE, aggregates, table_rows

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from spark_jobs.pipeline import Pipeline

CLICK_FILE = SAMPLE / "clicks_hour_000.csv"
ARTICLE_FILE = SAMPLE / "articles_metadata.csv"


@dataclass
class Records:
    """Kafka records made from CSV rows, with offsets counted per topic as a broker would."""

    settings: Settings
    next_offset: dict[str, int]

    def of(self, path: Path, kind: str, rows: list[dict[str, int]] | None = None) -> list[dict[str, Any]]:
        schema = CLICKS if kind == "clicks" else ARTICLES
        topic = self.settings.kafka_topic if kind == "clicks" else self.settings.kafka_metadata_topic
        source = rows if rows is not None else read_csv(path)
        records = []
        for line, row in enumerate(source, start=2):
            offset = self.next_offset.get(topic, 0)
            self.next_offset[topic] = offset + 1
            records.append(
                {
                    "key": str(row[schema.key]).encode(),
                    "value": json.dumps({name: row[name] for name in schema.columns}).encode(),
                    "topic": topic,
                    "partition": 0,
                    "offset": offset,
                    "timestamp": datetime(2026, 11, 30, 12, tzinfo=UTC),
                    "timestampType": 0,
                    "headers": [
                        {"key": HEADER_SOURCE_FILE, "value": path.name.encode()},
                        {"key": HEADER_SOURCE_LINE, "value": str(line).encode()},
                        {"key": HEADER_FILE_VERSION, "value": b"1"},
                    ],
                }
            )
        return records


def shifted(row: dict[str, int], days: int) -> dict[str, int]:
    """A click `days` later, in a session of its own."""
    shift = days * 86_400_000
    return {
        "click_timestamp": row["click_timestamp"] + shift,
        "session_start": row["session_start"] + shift,
        "session_id": row["session_id"] + shift,
    }


def read_csv(path: Path) -> list[dict[str, int]]:
    with open(path, newline="") as handle:
        return [{key: int(value) for key, value in row.items()} for row in csv.DictReader(handle)]


def batch_frame(spark: SparkSession, records: list[dict[str, Any]]) -> DataFrame:
    from spark_jobs.tables import KAFKA_SOURCE_SCHEMA

    return spark.createDataFrame(records, KAFKA_SOURCE_SCHEMA)


@pytest.fixture
def pipeline(
    metastore: Service, settings: Settings, spark: SparkSession, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Pipeline]:
    """A pipeline of the test's own, on the local disk, or on the session's HDFS or S3 store when the
    test is parametrized with `pipeline="hdfs"` or `"s3"` (indirect)."""
    from spark_jobs.pipeline import Pipeline
    from spark_jobs.tables import TableStore

    store = getattr(request, "param", "local")
    if store in ("hdfs", "s3"):
        request.getfixturevalue(store)
    own = own_pipeline(settings, tmp_path, store)
    store = TableStore(spark, own)
    store.ensure_tables()
    yield Pipeline(store, own)


def raw_coordinates(spark: SparkSession, settings: Settings) -> list[tuple[int, int]]:
    return [(row.kafka_partition, row.kafka_offset) for row in table_rows(spark, settings, "raw_clicks")]


def partition_folders(pipeline: Pipeline, table: str) -> dict[str, str]:
    return pipeline.store.metastore.partition_locations(table)


def assert_statistics_true(pipeline: Pipeline) -> None:
    """Every partition a job wrote carries its folder's rows, files and bytes in the metastore."""
    from app.table_catalog import TABLES, TableKind

    for table in TABLES:
        if table.kind is TableKind.CHECK:
            continue  # written without Spark, read from its footers
        for partition, entry in pipeline.store.metastore.partitions(table.name).items():
            assert entry.stats == folder_stats(entry.location), f"{table.name} {partition}"


def test_a_replayed_micro_batch_adds_nothing(pipeline: Pipeline, spark: SparkSession) -> None:
    from spark_jobs.tables import BatchTag

    settings = pipeline.settings
    records = Records(settings, {})
    batch = batch_frame(spark, records.of(ARTICLE_FILE, "articles") + records.of(CLICK_FILE, "clicks"))
    tag = BatchTag(str(uuid.uuid4()), 0)
    pipeline.land_batch(batch, tag)
    first = sorted(raw_coordinates(spark, settings))
    files = {
        p: [f.name for f in parquet_files(folder)] for p, folder in partition_folders(pipeline, "raw_clicks").items()
    }
    assert len(first) == len(set(first)) == 1883
    assert all(names == [f"{tag.prefix}-000.parquet"] for names in files.values()), files

    assert_statistics_true(pipeline)

    # the driver died after the raw tables were written: Spark runs the same batch again
    pipeline.land_batch(batch, tag)
    assert sorted(raw_coordinates(spark, settings)) == first
    assert len(table_rows(spark, settings, "raw_articles")) == 551
    assert aggregates(spark, settings) == expected_tables([CLICK_FILE], ARTICLE_FILE)
    assert_statistics_true(pipeline)  # the replayed files were not counted twice

    # the driver died between renaming a batch's files and recording the partitions' figures: the
    # metastore still counts the files before it; the view sees the folder disagree and reads the
    # footers, and the next append to the partition counts it again
    from app.pipeline_view import partition_rows
    from app.table_catalog import TableKind

    metastore = pipeline.store.metastore
    recording = metastore.set_stats
    metastore.set_stats = lambda name, stats: None  # type: ignore[method-assign]  # the crash
    try:
        clicks = read_csv(CLICK_FILE)
        pipeline.land_batch(batch_frame(spark, records.of(CLICK_FILE, "clicks", clicks[:5])), BatchTag(tag.query_id, 1))
    finally:
        metastore.set_stats = recording  # type: ignore[method-assign]
    entries = metastore.partitions("raw_clicks")
    stale = [p for p, entry in entries.items() if entry.stats != folder_stats(entry.location)]
    assert stale, "the crash left no partition behind its folder"
    for partition in stale:
        true_rows = folder_stats(entries[partition].location).rows
        assert partition_rows(entries[partition], TableKind.RAW) == true_rows
    pipeline.land_batch(batch_frame(spark, records.of(CLICK_FILE, "clicks", clicks[:5])), BatchTag(tag.query_id, 2))
    assert_statistics_true(pipeline)


@pytest.mark.parametrize("pipeline", ["local", "hdfs", "s3"], indirect=True)
def test_a_replay_after_a_compaction_adds_nothing_and_closed_hours_end_in_one_file(
    pipeline: Pipeline, spark: SparkSession
) -> None:
    """Files of the batch being landed are never merged: the job may die before Spark commits it,
    and its replay renames its file again; a compaction that had merged it would count it twice."""
    from spark_jobs.tables import BatchTag

    settings = pipeline.settings
    pipeline.closed_max_files = 1  # a closed partition is settled with one file (by default it may keep four)
    records = Records(settings, {})
    query = str(uuid.uuid4())
    clicks = read_csv(CLICK_FILE)
    parts = [clicks[number::10] for number in range(10)]  # each part touches the file's every hour
    frames = [batch_frame(spark, records.of(CLICK_FILE, "clicks", part)) for part in parts]
    for batch_id, frame in enumerate(frames[:9]):
        pipeline.land_batch(frame, BatchTag(query, batch_id))
    # in the hours every batch touched, eight files of level 0 were merged into one (the batch
    # landing them kept its own file apart)
    folders = partition_folders(pipeline, "raw_clicks")
    names = {p: sorted(f.name for f in parquet_files(folder)) for p, folder in folders.items()}
    for busy in ("dt=2017-10-01/hour=3", "dt=2017-10-01/hour=4"):
        batch_file, merged = names[busy]  # sorted: batch-... before compacted-...
        assert batch_file == f"{BatchTag(query, 8).prefix}-000.parquet" and merged.startswith("compacted-1-")
    assert all(len(found) <= 8 for found in names.values()), names

    pipeline.land_batch(frames[8], BatchTag(query, 8))  # replayed after the merge that left it apart
    assert (
        len(set(raw_coordinates(spark, settings)))
        == len(raw_coordinates(spark, settings))
        == sum(len(part) for part in parts[:9])
    )

    # every hour closed (as if later clicks had landed), a final merge while the last batch is
    # not committed: its own file stays apart, and its replay adds nothing
    pipeline.latest_click_hour = datetime(2030, 1, 1, tzinfo=UTC)
    last = BatchTag(query, 9)
    pipeline.land_batch(frames[9], last)
    pipeline.settle(uncommitted=last)
    pipeline.land_batch(frames[9], last)  # replayed after the compaction
    coordinates = raw_coordinates(spark, settings)
    assert len(coordinates) == len(set(coordinates)) == len(clicks)
    pipeline.settle()  # every batch committed (the end of a drain)
    folders = partition_folders(pipeline, "raw_clicks")
    names = {p: [f.name for f in parquet_files(folder)] for p, folder in folders.items()}
    assert all(len(found) == 1 for found in names.values()), names
    assert sorted(raw_coordinates(spark, settings)) == sorted(coordinates)
    assert unsettled_partitions(settings).get("raw_clicks") is None
    assert aggregates(spark, settings) == expected_tables([CLICK_FILE], None)
    assert_statistics_true(pipeline)

    # the hours holding some articles, as a micro-batch finds them for changed articles (read on
    # the driver, through the store's own client)
    wanted = {clicks[0]["click_article_id"], clicks[-1]["click_article_id"]}
    clicked_in = {
        datetime.fromtimestamp(row["click_timestamp"] / 1000, UTC).strftime("dt=%Y-%m-%d/hour=%-H")
        for row in clicks
        if row["click_article_id"] in wanted
    }
    assert folders_holding(partition_folders(pipeline, "article_hourly"), "article_id", wanted) == clicked_in
    assert folders_holding(partition_folders(pipeline, "article_hourly"), "article_id", {10**9}) == set()

    # the folders the partitions left are deleted once no reader can still be in them
    assert {Location.parse(folder).scheme for folder in folders.values()} == {settings.parquet_destination_path.scheme}
    assert pipeline.store.remove_retired(grace_seconds=0) > 0
    assert sorted(raw_coordinates(spark, settings)) == sorted(coordinates)
    assert aggregates(spark, settings) == expected_tables([CLICK_FILE], None)


def test_an_article_change_recomputes_exactly_the_hours_it_was_clicked_in(
    pipeline: Pipeline, spark: SparkSession
) -> None:
    from spark_jobs.tables import BatchTag

    settings = pipeline.settings
    records = Records(settings, {})
    query = str(uuid.uuid4())
    click_files = [SAMPLE / f"clicks_hour_00{n}.csv" for n in range(3)]
    articles = read_csv(ARTICLE_FILE)
    first = [*records.of(ARTICLE_FILE, "articles", articles)]
    for path in click_files:
        first += records.of(path, "clicks")
    pipeline.land_batch(batch_frame(spark, first), BatchTag(query, 0))
    clicks = [row for path in click_files for row in read_csv(path)]
    hours_of: dict[int, set[tuple[str, int]]] = {}
    for row in clicks:
        moment = datetime.fromtimestamp(row["click_timestamp"] / 1000, UTC)
        hours_of.setdefault(row["click_article_id"], set()).add((moment.strftime("%Y-%m-%d"), moment.hour))
    all_hours = set().union(*hours_of.values())
    # an article clicked in some hours but not all
    article_id = next(a for a, hours in sorted(hours_of.items()) if 1 < len(hours) < len(all_hours))
    changed = next(row for row in articles if row["article_id"] == article_id)
    before = {table: partition_folders(pipeline, table) for table in ("article_hourly", "category_hourly", "sessions")}

    new_category = changed["category_id"] + 1000
    edited = {**changed, "category_id": new_category}
    unclicked = {**changed, "article_id": 10**9}  # a new article nobody clicked: no hour to recompute
    result = pipeline.land_batch(
        batch_frame(spark, records.of(ARTICLE_FILE, "articles", [edited, unclicked])), BatchTag(query, 1)
    )
    assert result.hours == len(hours_of[article_id])
    for table in ("article_hourly", "category_hourly"):
        after = partition_folders(pipeline, table)
        moved = {name for name in after if after[name] != before[table].get(name)}
        assert moved == {f"dt={dt}/hour={hour}" for dt, hour in hours_of[article_id]}, table
    categories = {
        row.category_id for row in table_rows(spark, settings, "article_hourly") if row.article_id == article_id
    }
    assert categories == {new_category}

    edited_articles = [edited if row["article_id"] == article_id else row for row in articles]
    expected_file = Path(pipeline.settings.producer_data_root_directory) / "edited_articles.csv"
    with open(expected_file, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(ARTICLES.columns))
        writer.writeheader()
        writer.writerows(edited_articles)
    assert aggregates(spark, settings) == expected_tables(click_files, expected_file)
    article_rows = table_rows(spark, settings, "articles")
    assert len(article_rows) == 552
    assert {row.category_id for row in article_rows if row.article_id == article_id} == {new_category}
    assert_statistics_true(pipeline)


def test_compaction_beside_a_running_stream_loses_and_duplicates_nothing(
    kafka: Service, metastore: Service, settings: Settings, spark: SparkSession, tmp_path: Path
) -> None:
    """The long-running stream merges the files of the partitions it appends to while it runs, and a
    reader beside it (through the metastore and the Parquet files, as `check_tables` reads) never
    sees a row twice nor fewer rows than before."""
    import os
    import signal
    import threading
    import time

    import pyarrow.parquet as pq

    from app.checkpoint import committed_offsets, offsets_behind
    from app.kafka_io import end_offsets
    from app.metastore import Metastore
    from app.producer.publisher import publish
    from spark_jobs.pipeline import CLOSED_MAX_FILES
    from tests.integration.jobs import start_job

    own = replace(own_pipeline(settings, tmp_path / "pipeline"), raw_compaction_interval_seconds=20.0)
    clicks = read_csv(CLICK_FILE)
    parts = [clicks[number::10] for number in range(10)]  # ten files, each touching the busy hours
    metastore_client = Metastore(own.hive_metastore_uri, own.hive_database)
    seen: list[int] = []
    problems: list[str] = []
    stop_reading = threading.Event()

    def read_beside() -> None:
        while not stop_reading.is_set():
            try:
                locations = (
                    metastore_client.partition_locations("raw_clicks")
                    if "raw_clicks" in metastore_client.tables()
                    else {}
                )
                files = [f for folder in locations.values() for f in parquet_files(folder)]
                columns = [pq.read_table(f, columns=["kafka_partition", "kafka_offset"]).to_pylist() for f in files]
            except FileNotFoundError:
                continue  # a file renamed away between the listing and the read: read again
            coordinates = [(row["kafka_partition"], row["kafka_offset"]) for part in columns for row in part]
            if len(coordinates) != len(set(coordinates)):
                problems.append(f"{len(coordinates) - len(set(coordinates))} row(s) seen twice")
            if seen and len(coordinates) < seen[-1]:
                problems.append(f"{len(coordinates)} rows seen after {seen[-1]}")
            seen.append(len(coordinates))
            time.sleep(0.2)

    stream = start_job(
        own, "streaming_job.py", "--trigger", "processing-time", "--interval", "1 second", log=tmp_path / "stream.log"
    )
    reader = threading.Thread(target=read_beside, daemon=True)
    reader.start()
    try:
        nudge = [{**row, **shifted(row, days=3)} for row in clicks[:5]]  # later clicks: every hour before closes
        for number, part in enumerate([*parts, nudge]):
            if number == len(parts):
                time.sleep(own.raw_compaction_interval_seconds)  # the next batch merges the closed hours
            path = own.producer_data_root_directory / f"clicks_hour_{100 + number}.csv"
            with open(path, "w", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=list(CLICKS.columns))
                writer.writeheader()
                writer.writerows(part)
            publish(own)
            target = end_offsets(own, [own.kafka_topic])
            deadline = time.monotonic() + 180
            while any(offsets_behind(target, committed_offsets(own)).values()):  # each file in a batch of its own
                assert stream.poll() is None, (tmp_path / "stream.log").read_text()[-4000:]
                assert time.monotonic() < deadline, "the stream did not commit the file's batch within 180 s"
                time.sleep(0.5)
        time.sleep(1)  # one more poll of the reader
    finally:
        stop_reading.set()
        reader.join(30)
        os.killpg(stream.pid, signal.SIGTERM)
        stream.wait(120)
    assert problems == []
    total = len(clicks) + len(nudge)
    assert seen[-1] == total and max(seen) == total
    log = (tmp_path / "stream.log").read_text()
    assert "raw_clicks: compacted" in log
    folders = metastore_client.partition_locations("raw_clicks")
    files = {name: parquet_files(folder) for name, folder in folders.items()}
    assert all(len(found) <= 8 for found in files.values()), files
    # the busy hours took a file from each of the ten batches and are closed (clicks days later
    # landed): merged down to a few files (a closed partition with more than four is merged into one)
    for busy in ("dt=2017-10-01/hour=3", "dt=2017-10-01/hour=4"):
        assert len(files[busy]) <= CLOSED_MAX_FILES and any(f.name.startswith("compacted-") for f in files[busy])
    coordinates = raw_coordinates(spark, own)
    assert len(coordinates) == len(set(coordinates)) == total
    sent = sorted(own.producer_data_root_directory.glob("clicks_hour_*.csv"))
    assert aggregates(spark, own) == expected_tables(sent, None)


def test_a_table_an_earlier_version_created_gets_the_columns_this_version_writes(
    kafka: Service, metastore: Service, settings: Settings, spark: SparkSession, tmp_path: Path
) -> None:
    from spark_jobs.tables import TableStore

    own = own_pipeline(settings, tmp_path / "pipeline")
    store = TableStore(spark, own)
    spec = store.tables["quarantine"]
    earlier = ", ".join(f"`{f.name}` {f.dataType.simpleString()}" for f in spec.data_fields if f.name != "click_hour")
    spark.sql(f"CREATE DATABASE IF NOT EXISTS `{own.hive_database}`")
    spec.root.mkdir(parents=True)
    spark.sql(
        f"CREATE EXTERNAL TABLE {store.qualified('quarantine')} ({earlier}) PARTITIONED BY (`dt` string) "
        f"STORED AS PARQUET LOCATION 'file://{spec.root}'"
    )
    store.ensure_tables()
    columns = [column.name for column in store.metastore.table("quarantine").sd.cols]
    assert columns == [f.name for f in spec.data_fields]  # click_hour added at the end
    store.ensure_tables()  # and only once
