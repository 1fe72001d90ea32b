"""The streaming job: both Kafka topics into raw Parquet tables and exact hourly Hive aggregates.

Usage (through spark-submit, which `SparkSubmitOperator` and `python -m spark_jobs.submit` run):
  streaming_job.py [--trigger available-now|processing-time] [--interval "30 seconds"]

Reads `KAFKA_TOPIC` and `KAFKA_METADATA_TOPIC` with `read_committed` isolation from
`KAFKA_STARTING_OFFSETS` (for a new checkpoint), at most `SPARK_MAX_OFFSETS_PER_TRIGGER` records
a micro-batch, and hands each micro-batch to `Pipeline.land_batch`. The checkpoint lives in
`CHECK_POINT_LOCATION/streaming`; a checkpoint written for other topics or another version of
this query stops the job with a clear message instead of reprocessing silently.
`available-now` drains what is in the topics and stops; `processing-time` runs until stopped.
Progress (rows/s, batch duration, records behind the topic end) is logged after each batch.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.streaming.listener import StreamingQueryListener
from pyspark.sql.streaming.query import StreamingQuery

from app.schemas import SCHEMA_VERSION
from app.settings import Settings, load_settings
from app.spark_session import build_spark_session
from spark_jobs.pipeline import Pipeline
from spark_jobs.tables import TableStore

log = logging.getLogger("spark_jobs.streaming_job")

QUERY_VERSION = 1  # bump when the query changes in a way an old checkpoint cannot follow


class CheckpointMismatchError(RuntimeError):
    """The checkpoint belongs to another query; continuing would reprocess or skip data."""


def query_identity(settings: Settings) -> dict[str, Any]:
    return {
        "job": "clickstream-streaming",
        "query_version": QUERY_VERSION,
        "schema_version": SCHEMA_VERSION,
        "topics": sorted([settings.kafka_topic, settings.kafka_metadata_topic]),
        "database": settings.hive_database,
    }


def check_checkpoint(settings: Settings) -> Path:
    """The checkpoint folder, after making sure it was written by this query (or is new)."""
    checkpoint = settings.check_point_location / "streaming"
    identity_file = settings.check_point_location / "streaming.query.json"
    expected = query_identity(settings)
    if identity_file.exists():
        found = json.loads(identity_file.read_text())
        if found != expected:
            differences = ", ".join(
                f"{key}: checkpoint has {found.get(key)!r}, job has {expected[key]!r}"
                for key in expected
                if found.get(key) != expected[key]
            )
            raise CheckpointMismatchError(
                f"the checkpoint in {checkpoint} was written by another query ({differences}); "
                "set CHECK_POINT_LOCATION to a new folder (the job then starts from KAFKA_STARTING_OFFSETS) "
                "or restore the settings it was written with"
            )
    elif checkpoint.exists() and any(checkpoint.iterdir()):
        raise CheckpointMismatchError(
            f"the checkpoint in {checkpoint} has no record of the query that wrote it ({identity_file} is missing); "
            "set CHECK_POINT_LOCATION to a new folder"
        )
    else:
        identity_file.parent.mkdir(parents=True, exist_ok=True)
        identity_file.write_text(json.dumps(expected, indent=2, sort_keys=True))
    return checkpoint


class ProgressLogger(StreamingQueryListener):
    """Logs each micro-batch: rows, rows/s, duration, and how far behind the topics' end it is."""

    def onQueryStarted(self, event: Any) -> None:
        log.info("query %s started", event.id)

    def onQueryProgress(self, event: Any) -> None:
        progress = event.progress
        behind = [source.metrics.get("maxOffsetsBehindLatest") for source in progress.sources if source.metrics]
        log.info(
            "batch %s: %s rows, %.0f rows/s, %s ms, offsets behind latest: %s",
            progress.batchId,
            progress.numInputRows,
            progress.processedRowsPerSecond or 0.0,
            progress.batchDuration,
            ", ".join(str(b) for b in behind) or "0",
        )

    def onQueryIdle(self, event: Any) -> None:
        pass

    def onQueryTerminated(self, event: Any) -> None:
        log.info("query %s terminated%s", event.id, f": {event.exception}" if event.exception else "")


def kafka_stream(spark: SparkSession, settings: Settings) -> DataFrame:
    return (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", settings.kafka_servers)
        .option("kafka.isolation.level", "read_committed")
        .option("subscribe", f"{settings.kafka_topic},{settings.kafka_metadata_topic}")
        .option("startingOffsets", settings.kafka_starting_offsets)
        .option("maxOffsetsPerTrigger", settings.spark_max_offsets_per_trigger)
        .option("includeHeaders", "true")
        .load()
    )


def start(spark: SparkSession, settings: Settings, trigger: str, interval: str) -> StreamingQuery:
    """Create the tables if needed and start the query; returns the running query."""
    checkpoint = check_checkpoint(settings)
    store = TableStore(spark, settings)
    store.ensure_tables()
    pipeline = Pipeline(store, settings)
    writer = (
        kafka_stream(spark, settings)
        .writeStream.queryName("clickstream")
        .foreachBatch(pipeline.process_batch)
        .option("checkpointLocation", str(checkpoint))
    )
    writer = (
        writer.trigger(availableNow=True) if trigger == "available-now" else writer.trigger(processingTime=interval)
    )
    return writer.start()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trigger", choices=("available-now", "processing-time"), default="available-now")
    parser.add_argument("--interval", help="micro-batch interval (default: SPARK_TRIGGER_INTERVAL)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = load_settings()
    try:
        check_checkpoint(settings)  # before Spark starts: a wrong checkpoint fails in a second
    except CheckpointMismatchError as error:
        log.error("%s", error)
        return 3
    spark = build_spark_session(settings, "clickstream-streaming")
    spark.sparkContext.setLogLevel("WARN")
    spark.streams.addListener(ProgressLogger())
    try:
        query = start(spark, settings, args.trigger, args.interval or settings.spark_trigger_interval)
        query.awaitTermination()
    finally:
        spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
