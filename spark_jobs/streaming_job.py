"""The streaming job: both Kafka topics into raw Parquet tables and exact hourly Hive aggregates.

Usage (through spark-submit, which `SparkSubmitOperator` and `python -m spark_jobs.submit` run):
  streaming_job.py [--trigger available-now|processing-time] [--interval "30 seconds"]

Reads `KAFKA_TOPIC` and `KAFKA_METADATA_TOPIC` with `read_committed` isolation from
`KAFKA_STARTING_OFFSETS` (for a new checkpoint), at most `SPARK_MAX_OFFSETS_PER_TRIGGER` records
a micro-batch, and hands each micro-batch to `Pipeline.land_batch` (`spark_jobs/pipeline.py`). The checkpoint lives in
`CHECK_POINT_LOCATION/streaming`; a checkpoint written for other topics or another version of
this query stops the job with a clear message instead of reprocessing silently (exit code 3), and
so does a second job on a checkpoint another job runs on (exit code 4; see `app/checkpoint.py`).
A query that fails (a micro-batch that cannot be written, a broker that refuses the credentials)
exits with code 5 and one line saying why; a failed micro-batch is never committed.
`available-now` drains what is in the topics, recomputes the aggregates of every hour it landed
(once, after its last micro-batch; see `Pipeline`) and stops; `processing-time` recomputes after
each micro-batch and runs until stopped.
Progress (rows/s, batch duration, records behind the topic end) is logged after each batch.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from pyspark.errors import StreamingQueryException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.streaming.listener import StreamingQueryListener
from pyspark.sql.streaming.query import StreamingQuery

from app.checkpoint import CheckpointBusyError, CheckpointMismatchError, StreamLock, check_checkpoint
from app.kafka_io import spark_kafka_options
from app.settings import Settings, load_settings
from app.spark_session import configure_job_logging, spark_application
from spark_jobs.pipeline import Pipeline, root_cause
from spark_jobs.tables import TableStore

log = logging.getLogger("spark_jobs.streaming_job")


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


def explain(cause: str, settings: Settings) -> str:
    """The cause of a stopped query, with the setting to look at when it is a known one."""
    if "SaslAuthenticationException" in cause:
        return (
            f"{cause}; Kafka at KAFKA_SERVERS={settings.kafka_servers} refused the login of "
            f"KAFKA_SASL_USERNAME={settings.kafka_sasl_username}: check KAFKA_SASL_PASSWORD"
        )
    return cause


def kafka_stream(spark: SparkSession, settings: Settings) -> DataFrame:
    return (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", settings.kafka_servers)
        .option("kafka.isolation.level", "read_committed")
        .option("subscribe", f"{settings.kafka_topic},{settings.kafka_metadata_topic}")
        .option("startingOffsets", settings.kafka_starting_offsets)
        .option("maxOffsetsPerTrigger", settings.spark_max_offsets_per_trigger)
        .option("includeHeaders", "true")
        # a broker that died is given up on after 15 s, not the client's default 60 s: the offsets of
        # the next micro-batch then come from the partitions' new leaders
        .option("kafka.default.api.timeout.ms", "15000")
        .option("kafka.request.timeout.ms", "10000")
        .options(**spark_kafka_options(settings))  # the login, when KAFKA_SECURITY_PROTOCOL asks for one
        .load()
    )


def start(
    spark: SparkSession, settings: Settings, trigger: str, interval: str, lock: StreamLock | None = None
) -> tuple[StreamingQuery, Pipeline]:
    """Create the tables if needed and start the query; returns the running query and its batch handler.
    With `lock`, each micro-batch first confirms that the job still holds the checkpoint's lock."""
    checkpoint = check_checkpoint(settings)
    store = TableStore(spark, settings)
    store.ensure_tables()
    pipeline = Pipeline(store, settings, defer_recompute=trigger == "available-now")
    pipeline.confirm_lock = lock.confirm if lock is not None else None
    pipeline.recompute_pending()  # hours a drain that died had landed but not recomputed
    writer = (
        kafka_stream(spark, settings)
        .writeStream.queryName("clickstream")
        .foreachBatch(pipeline.process_batch)
        .option("checkpointLocation", str(checkpoint))
    )
    writer = (
        writer.trigger(availableNow=True) if trigger == "available-now" else writer.trigger(processingTime=interval)
    )
    return writer.start(), pipeline


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trigger", choices=("available-now", "processing-time"), default="available-now")
    parser.add_argument("--interval", help="micro-batch interval (default: SPARK_TRIGGER_INTERVAL)")
    args = parser.parse_args(argv)
    configure_job_logging()
    settings = load_settings()
    lock = StreamLock(settings, args.trigger)
    try:
        check_checkpoint(settings)  # before Spark starts: a wrong or busy checkpoint fails in a second
        lock.acquire()
    except CheckpointMismatchError as error:
        log.error("%s", error)
        return 3
    except CheckpointBusyError as error:
        log.error("%s", error)
        return 4
    try:
        with spark_application(settings, "clickstream-streaming") as spark:
            spark.streams.addListener(ProgressLogger())
            query, pipeline = start(
                spark, settings, args.trigger, args.interval or settings.spark_trigger_interval, lock
            )
            try:
                query.awaitTermination()
            except StreamingQueryException as error:
                log.error("the streaming query stopped: %s", pipeline.failure or explain(root_cause(error), settings))
                return 5
            try:
                pipeline.recompute_pending()  # the drain's hours, once, after its last micro-batch
                pipeline.settle()  # every batch is committed now: merge what the last ones appended
            except Exception as error:  # noqa: BLE001 - whatever failed, the hours stay pending; exit 5
                log.error(
                    "recomputing the drained hours failed (they stay pending; the next run recomputes them): %s",
                    root_cause(error),
                )
                return 5
    finally:
        lock.release()
    return 0


if __name__ == "__main__":
    sys.exit(main())
