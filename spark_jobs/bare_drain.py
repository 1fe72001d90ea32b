"""`make bench`'s ceiling for the streaming job: the same topics into Parquet with nothing else.

The same Kafka source as `streaming_job.py` (both topics, `read_committed`, the same
`SPARK_MAX_OFFSETS_PER_TRIGGER`, available-now), the value cast to text, written as Parquet by
Spark's own file sink: no JSON parsing, no quarantine, no deduplication, no join, no aggregates,
no metastore. Not part of the pipeline.

Usage (through spark-submit): bare_drain.py OUTPUT_FOLDER CHECKPOINT_FOLDER
"""

from __future__ import annotations

import sys

from pyspark.sql import functions as F

from app.settings import load_settings
from app.spark_session import configure_job_logging, spark_application
from spark_jobs.streaming_job import ProgressLogger, kafka_stream


def main(argv: list[str] | None = None) -> int:
    output, checkpoint = argv if argv is not None else sys.argv[1:]
    configure_job_logging()
    settings = load_settings()
    with spark_application(settings, "clickstream-bench-bare-drain") as spark:
        spark.streams.addListener(ProgressLogger())
        rows = kafka_stream(spark, settings).select(
            F.col("value").cast("string").alias("value"), "topic", "partition", "offset", "timestamp"
        )
        query = (
            rows.writeStream.format("parquet")
            .option("path", output)
            .option("checkpointLocation", checkpoint)
            .trigger(availableNow=True)
            .start()
        )
        query.awaitTermination()
    return 0


if __name__ == "__main__":
    sys.exit(main())
