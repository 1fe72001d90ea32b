"""Spark configuration of clickstream, in one place: for a SparkSession and for `spark-submit`.

Every Spark application of the project (the streaming job, the batch job, the Thrift server,
tests) gets the same settings from `spark_conf()`: the Kafka connector jars, the shared Hive
Metastore, the warehouse, scratch and temp folders under the state folder, UTC, a driver bound to
loopback, and event logs that the Spark History Server shows after the application ended.
`spark_environment()` is the environment the driver process needs (set before its JVM starts).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from app.runtime import deps
from app.settings import REPO_ROOT, Settings
from app.storage import HDFS_CLOSE_RETRY

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


SPARK_JOBS_DIR = REPO_ROOT / "spark_jobs"  # the applications: streaming_job.py, recompute_hours.py, ...


def spark_event_log_dir(settings: Settings) -> Path:
    return settings.state_dir / "spark" / "events"


def hdfs_client_conf(settings: Settings) -> dict[str, str]:
    """Hadoop client settings for HDFS: files closed without 400 ms waits (`app/storage.py`), and one
    replica per block on the local HDFS, which has one DataNode (a cluster's HDFS keeps its own default)."""
    from app.runtime.hdfs import Hdfs

    conf = {f"spark.hadoop.{key}": value for key, value in HDFS_CLOSE_RETRY.items()}
    if Hdfs(settings).wanted():
        conf["spark.hadoop.dfs.replication"] = "1"
    return conf


def spark_conf(settings: Settings) -> dict[str, str]:
    """The Spark properties every clickstream application runs with (the event log folder is
    created here: Spark refuses to start without it)."""
    spark_state = settings.state_dir / "spark"
    spark_event_log_dir(settings).mkdir(parents=True, exist_ok=True)
    scratch = spark_state / "scratch"
    java_options = f"-Djava.io.tmpdir={spark_state / 'tmp'} -Dderby.system.home={spark_state}"
    driver_java_options = " ".join(
        [java_options, *class_archive_options(settings), settings.spark_driver_java_options]
    ).strip()
    return {
        "spark.master": settings.spark_master,
        "spark.jars": ",".join(str(jar) for jar in deps.spark_kafka_jars()),
        "spark.sql.catalogImplementation": "hive",
        "spark.hadoop.hive.metastore.uris": settings.hive_metastore_uri,
        "spark.sql.warehouse.dir": str(settings.hive_warehouse_dir),
        "spark.hadoop.hive.exec.scratchdir": str(scratch),
        "spark.hadoop.hive.exec.local.scratchdir": str(scratch),
        "spark.hadoop.hive.downloaded.resources.dir": str(spark_state / "resources"),
        "spark.local.dir": str(spark_state / "local"),
        "spark.driver.extraJavaOptions": driver_java_options,
        "spark.executor.extraJavaOptions": java_options,
        "spark.driver.memory": settings.spark_driver_memory,
        "spark.driver.host": driver_host(settings),
        "spark.driver.bindAddress": settings.bind_host,
        "spark.ui.port": str(settings.spark_ui_port),
        "spark.ui.showConsoleProgress": "false",
        "spark.eventLog.enabled": "true",
        "spark.eventLog.dir": f"file://{spark_event_log_dir(settings)}",
        "spark.eventLog.rolling.enabled": "true",  # a long-running stream's log is rolled, not one huge file
        "spark.eventLog.rolling.maxFileSize": "64m",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": "4",
        "spark.sql.sources.partitionOverwriteMode": "dynamic",
        # a query filtering on an integer partition column (`hour`, `bucket`) makes Hive's metastore cast
        # every partition value; on Derby that fails once a text value is among them, and its fallback
        # refuses integer keys: Spark then lists the table's partitions and filters them itself
        "spark.sql.hive.metastorePartitionPruningFallbackOnException": "true",
        **hdfs_client_conf(settings),
        **s3a_conf(settings),
        **local_file_system_conf(settings),
    }


ENVIRONMENT_CREDENTIALS = "software.amazon.awssdk.auth.credentials.EnvironmentVariableCredentialsProvider"


def s3a_properties(settings: Settings) -> dict[str, str]:
    """Hadoop's S3A settings for the S3 store the settings name: its endpoint and region, the bucket
    named in the path (what SeaweedFS and MinIO need), the keys from the environment
    (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`: `spark_environment()`), never a command line."""
    endpoint = settings.s3_endpoint_url
    return {
        "fs.s3a.endpoint": endpoint,
        "fs.s3a.endpoint.region": settings.s3_region,
        "fs.s3a.path.style.access": "true",
        "fs.s3a.connection.ssl.enabled": str(endpoint.startswith("https://")).lower(),
        "fs.s3a.aws.credentials.provider": ENVIRONMENT_CREDENTIALS,
    }


def s3a_conf(settings: Settings) -> dict[str, str]:
    """`s3a_properties()` as Spark takes them, when a table location is on S3."""
    if not settings.uses_s3:
        return {}
    return {f"spark.hadoop.{name}": value for name, value in s3a_properties(settings).items()}


def local_file_system_conf(settings: Settings) -> dict[str, str]:
    """On a local master, folders are listed by the driver, and `file:` paths go through
    `jvm/spark-local-fs`: Hadoop's own local file system started a `chmod` process for every file
    and folder it wrote, most of the time of a write of a couple of hundred hourly partitions. A
    cluster's executors run elsewhere, without the class, and write to a shared file system anyway."""
    if not settings.spark_master.startswith("local"):
        return {}
    # a table of more than 32 partitions was listed by a Spark job of a task per folder (a second
    # for a couple of hundred hours); one process lists a local disk's folders in milliseconds
    listing = {"spark.sql.sources.parallelPartitionDiscovery.threshold": "100000"}
    classes = deps.spark_local_fs_classes()
    if classes is None:
        return listing
    return {
        **listing,
        "spark.driver.extraClassPath": str(classes),
        "spark.hadoop.fs.file.impl": deps.SPARK_LOCAL_FS_CLASS,
    }


def class_archive_options(settings: Settings) -> list[str]:
    """The driver maps the class archive made at setup (`app/runtime/spark_class_archive.py`): made
    on a local master, it fits the class path of a local master's driver only."""
    archive = deps.spark_class_archive()
    return [f"-XX:SharedArchiveFile={archive}"] if archive and settings.spark_master.startswith("local") else []


def driver_host(settings: Settings) -> str:
    """The address executors reach the driver at: the bind host, or this machine's name when the
    services listen on every interface (a container on a network, a cluster node)."""
    import socket

    return socket.gethostname() if settings.bind_host == "0.0.0.0" else settings.bind_host  # noqa: S104


def spark_environment(settings: Settings) -> dict[str, str]:
    """Environment variables a Spark driver needs before its JVM starts."""
    environment = {
        "SPARK_LOCAL_IP": settings.bind_host,  # the UI and block manager bind here, not 0.0.0.0
        "SPARK_HOME": str(deps.spark_home()),
        "PYSPARK_PYTHON": os.environ.get("PYSPARK_PYTHON", _python()),
    }
    if settings.uses_s3:  # S3A's keys (`s3a_conf()`), and the driver's own for its reads outside Spark
        from app.settings import s3_credentials

        key, secret = s3_credentials(settings)
        environment.update(
            {"AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret, "S3_ACCESS_KEY": key, "S3_SECRET_KEY": secret}
        )
    return environment


def spark_submit_command(settings: Settings, application: str, arguments: list[str] | None = None) -> list[str]:
    """A `spark-submit` command line running `application` with `spark_conf()`."""
    command = [str(deps.spark_home() / "bin" / "spark-submit")]
    for key, value in spark_conf(settings).items():
        command += ["--conf", f"{key}={value}"]
    return [*command, application, *(arguments or [])]


def build_spark_session(settings: Settings, app_name: str) -> SparkSession:
    """A SparkSession with `spark_conf()`; the driver JVM is started by this call if needed."""
    from pyspark.sql import SparkSession

    for folder in ("tmp", "local", "scratch"):
        (settings.state_dir / "spark" / folder).mkdir(parents=True, exist_ok=True)
    os.environ.update(spark_environment(settings))
    builder = SparkSession.builder.appName(app_name)
    for key, value in spark_conf(settings).items():
        builder = builder.config(key, value)
    return builder.enableHiveSupport().getOrCreate()


@contextmanager
def spark_application(settings: Settings, app_name: str) -> Iterator[SparkSession]:
    """A job's Spark application for the length of a `with` block: started with the settings, Spark's
    own log at WARN, stopped when the block ends, also when it fails."""
    spark = build_spark_session(settings, app_name)
    spark.sparkContext.setLogLevel("WARN")
    try:
        yield spark
    finally:
        spark.stop()


def _python() -> str:
    import sys

    return sys.executable


def configure_job_logging() -> None:
    """Log lines of a Spark job's Python driver: ours at INFO; py4j's chatter (a line for every
    callback from the JVM, such as an idle streaming query's, every few seconds) only when it warns."""
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("py4j").setLevel(logging.WARNING)
