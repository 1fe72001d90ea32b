"""The class archive of Spark's driver JVM: the classes a clickstream job loads, parsed and verified
once at setup, then mapped by every driver instead of loaded again from some 300 jars.

A `spark-submit` spends most of its first seconds loading classes (Spark, Hadoop, Hive's client,
Parquet): on a 2-core machine a small job took 18.7 s of CPU before; with the archive, 12.7 s
(measured 4 Dec 2026, `docs/design/spark-start.md`). The JVM's own application class-data sharing
(a dynamic archive, JDK 13 and later) does it: a job run with `-XX:ArchiveClassesAtExit=<file>`
writes what it loaded, and `-XX:SharedArchiveFile=<file>` maps it. The archive is valid only for
the same JVM build and the same class path; otherwise the JVM says so in one line and loads the
classes as before, so a stale archive costs time, never a failure.

`make setup` runs `python -m app.runtime.spark_class_archive` (a no-op while the JVM, pyspark and
the class path it was made for are unchanged); `app.spark_session.class_archive_options` maps it.
The archive is made by a job on a local master, whose class path is the one local jobs run with;
a driver of a standalone cluster's job has another class path and starts without it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from app.runtime import deps
from app.settings import REPO_ROOT

log = logging.getLogger(__name__)

ARCHIVE = deps.SPARK_CLASS_ARCHIVE
STAMP = ARCHIVE.with_suffix(".stamp")


def archive_stamp() -> str:
    """What the archive depends on: the JVM's build, pyspark's jars, the local file system's jar,
    and the workload below."""
    import pyspark

    banner = subprocess.run([deps.java_executable(), "-version"], capture_output=True, text=True, check=False).stderr
    local_fs = deps.spark_local_fs_classes()
    parts = [
        os.path.realpath(deps.java_executable()),
        banner,
        pyspark.__version__,
        local_fs.read_bytes().hex() if local_fs else "",
        Path(__file__).read_text(),
    ]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def ensure_archive() -> Path:
    """Make the archive unless the one there was made for this JVM, pyspark and class path."""
    stamp = archive_stamp()
    if ARCHIVE.exists() and STAMP.exists() and STAMP.read_text() == stamp:
        return ARCHIVE
    print("[setup] making the class archive of Spark's driver (once, about a minute)", flush=True)
    from app.settings import load_settings
    from app.spark_session import local_file_system_conf, spark_environment

    ARCHIVE.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="spark-class-archive-") as scratch:
        settings = load_settings({"CLICKSTREAM_STATE_DIR": scratch, "SPARK_MASTER_URL": "local[2]"}, env_file=None)
        written = Path(scratch) / "driver-classes.jsa"
        command = [str(deps.spark_home() / "bin" / "spark-submit"), "--master", "local[2]"]
        conf = {
            **local_file_system_conf(settings),
            "spark.ui.enabled": "false",
            "spark.sql.catalogImplementation": "hive",
            "spark.sql.warehouse.dir": f"{scratch}/warehouse",
            "spark.driver.extraJavaOptions": (
                f"-XX:ArchiveClassesAtExit={written} -Djava.io.tmpdir={scratch} -Dderby.system.home={scratch}"
            ),
        }
        for key, value in conf.items():
            command += ["--conf", f"{key}={value}"]
        command += [__file__, scratch]
        environment = {**os.environ, **spark_environment(settings), "PYTHONPATH": str(REPO_ROOT)}
        result = subprocess.run(command, env=environment, capture_output=True, text=True, check=False, cwd=scratch)
        if result.returncode != 0 or not written.exists():
            raise deps.MissingDependencyError(
                f"the Spark class archive could not be made (exit {result.returncode}); its job said:\n"
                + "\n".join(result.stderr.splitlines()[-20:])
            )
        written.replace(ARCHIVE)  # a file of .deps/, not table data
    STAMP.write_text(stamp)
    return ARCHIVE


def _workload(scratch: str) -> None:
    """What a clickstream job does, small: a Hive table written by dynamic partition overwrite, Parquet
    read back, JSON parsed, exact distinct counts, a window, a join, and a micro-batch stream."""
    from pyspark.sql import SparkSession, Window
    from pyspark.sql import functions as F

    spark = SparkSession.builder.appName("clickstream-class-archive").enableHiveSupport().getOrCreate()
    spark.conf.set("spark.sql.sources.partitionOverwriteMode", "dynamic")
    rows = spark.range(2000).select(
        (F.col("id") % 97).alias("user_id"),
        (F.col("id") % 13).cast("string").alias("article_id"),
        F.to_json(F.struct((F.col("id") % 7).alias("session"))).alias("value"),
        F.lit("2017-10-01").alias("dt"),
        (F.col("id") % 3).cast("int").alias("hour"),
    )
    parsed = rows.withColumn("session", F.from_json("value", "session BIGINT").getField("session"))
    parsed.write.mode("overwrite").partitionBy("dt", "hour").format("parquet").saveAsTable("archive_clicks")
    parsed.select(*spark.table("archive_clicks").columns).write.insertInto("archive_clicks", overwrite=True)
    clicks = spark.table("archive_clicks").where("hour = 1")
    articles = spark.range(13).select(
        F.col("id").cast("string").alias("article_id"), (F.col("id") % 4).alias("category")
    )
    enriched = clicks.join(articles, "article_id", "left")
    ranked = enriched.withColumn("rank", F.row_number().over(Window.partitionBy("user_id").orderBy("session")))
    ranked.groupBy("dt", "hour", "category").agg(
        F.count_distinct("user_id"), F.count_distinct("session"), F.count("*"), F.max("rank")
    ).collect()
    spark.read.parquet(f"{scratch}/warehouse/archive_clicks").count()

    def land(batch, batch_id: int) -> None:  # type: ignore[no-untyped-def]
        batch.write.mode("append").parquet(f"{scratch}/stream/{batch_id}")

    query = (
        spark.readStream.format("rate")
        .option("rowsPerSecond", 100)
        .load()
        .writeStream.foreachBatch(land)
        .option("checkpointLocation", f"{scratch}/checkpoint")
        .trigger(once=True)
        .start()
    )
    query.awaitTermination()
    spark.stop()


if __name__ == "__main__":
    if len(sys.argv) > 1:  # run by spark-submit: the workload
        _workload(sys.argv[1])
    else:
        ensure_archive()
