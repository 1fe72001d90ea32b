"""A Spark application for the shared-catalogue test: writes a Hive table, then stays alive.

Usage: spark-submit hold_table.py TABLE READY_FILE RELEASE_FILE

Writes 100 rows to TABLE through the Hive Metastore, creates READY_FILE, and keeps its
SparkSession open until RELEASE_FILE appears (at most 5 minutes), so a second application can
read the table while this one is still running.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from pyspark.sql import SparkSession

if __name__ == "__main__":
    table, ready_file, release_file = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    spark = SparkSession.builder.appName("hold-table").enableHiveSupport().getOrCreate()
    try:
        spark.range(100).selectExpr("id", "id * 2 AS doubled").write.format("parquet").saveAsTable(table)
        ready_file.write_text(str(spark.table(table).count()))
        deadline = time.monotonic() + 300
        while not release_file.exists() and time.monotonic() < deadline:
            time.sleep(0.5)
    finally:
        spark.stop()
