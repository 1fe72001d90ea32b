"""The bench's fair ceiling for the drain: the same work as the streaming job, none of its machinery.

One plain Spark batch job reads what the topics hold (both topics, `read_committed`, headers
included, as `streaming_job.py` reads them) and writes the tables the drain writes, with the same
transforms (`spark_jobs/transforms.py`): the quarantine, the typed raw tables partitioned by hour,
the latest articles, and the four hourly aggregates with their exact distinct counts, computed from
the raw clicks read back as the drain's recomputation reads them. What it leaves out is what makes
the pipeline exactly-once and incremental: no checkpoint, no staging and renames, no metastore, no
statistics, no compaction, no lock, no pending hours; every table is written once, as plain
Parquet folders. Not part of the pipeline (`make bench-scale` runs it beside each drain).

Usage (through spark-submit): fair_drain.py OUTPUT_FOLDER
"""

from __future__ import annotations

import logging
import sys
import time

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from app.event_time import EventTimeRules
from app.kafka_io import spark_kafka_options
from app.schemas import ARTICLES, CLICKS
from app.settings import load_settings
from app.spark_session import configure_job_logging, spark_application
from app.table_catalog import TABLES, Source, TableKind
from spark_jobs import transforms as T

log = logging.getLogger("spark_jobs.fair_drain")

APP_NAME = "clickstream-bench-fair-drain"
ENRICHED = (Source.ENRICHED_CLICKS, Source.SESSION_CLICKS)


def main(argv: list[str] | None = None) -> int:
    (output,) = argv if argv is not None else sys.argv[1:]
    configure_job_logging()
    settings = load_settings()
    with spark_application(settings, APP_NAME) as spark:
        started = time.monotonic()
        records = (
            spark.read.format("kafka")
            .option("kafka.bootstrap.servers", settings.kafka_servers)
            .option("kafka.isolation.level", "read_committed")
            .option("subscribe", f"{settings.kafka_topic},{settings.kafka_metadata_topic}")
            .option("startingOffsets", "earliest")
            .option("endingOffsets", "latest")
            .option("includeHeaders", "true")
            .options(**spark_kafka_options(settings))
            .load()
        )
        topics = {settings.kafka_topic: CLICKS, settings.kafka_metadata_topic: ARTICLES}
        parsed = T.parse_records(records, topics, EventTimeRules.from_settings(settings)).persist()
        inputs: dict[Source, DataFrame] = {
            Source.ANY_RECORDS: parsed,
            Source.CLICK_RECORDS: parsed.where(F.col("kafka_topic") == settings.kafka_topic),
            Source.ARTICLE_RECORDS: parsed.where(F.col("kafka_topic") == settings.kafka_metadata_topic),
        }
        for kind in (TableKind.RAW, TableKind.DIMENSION, TableKind.AGGREGATE):
            for table in [t for t in TABLES if t.kind is kind]:
                if table.transform is None:
                    continue
                if table.source is Source.RAW_ARTICLES:
                    inputs[table.source] = spark.read.parquet(f"{output}/raw_articles")
                elif table.source in ENRICHED and Source.ENRICHED_CLICKS not in inputs:
                    # read back once for every aggregate, as the drain's recomputation reads its hours
                    clicks = T.click_facts(spark.read.parquet(f"{output}/raw_clicks"))
                    enriched = T.enrich_clicks(clicks, spark.read.parquet(f"{output}/articles")).persist()
                    inputs.update(dict.fromkeys(ENRICHED, enriched))
                frame = T.TABLE_TRANSFORMS[table.transform](inputs[table.source])
                table_started = time.monotonic()
                frame.write.mode("errorifexists").partitionBy(*table.partition_columns).parquet(
                    f"{output}/{table.name}"
                )
                log.info("%s: written in %.1f s", table.name, time.monotonic() - table_started)
        rows = parsed.count()
        log.info("fair drain: %s records, every table written in %.1f s", rows, time.monotonic() - started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
