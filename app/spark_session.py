"""Spark configuration of clickstream, in one place: for a SparkSession and for `spark-submit`.

Every Spark application of the project (the streaming job, the batch job, tests) gets the same
settings from `spark_conf()`: the Kafka connector jars, the shared Hive Metastore, the warehouse,
scratch and temp folders under the state folder, UTC, and a driver bound to loopback.
`spark_environment()` is the environment the driver process needs (set before its JVM starts).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from app.runtime import deps
from app.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def spark_conf(settings: Settings) -> dict[str, str]:
    """The Spark properties every clickstream application runs with."""
    spark_state = settings.state_dir / "spark"
    scratch = spark_state / "scratch"
    java_options = f"-Djava.io.tmpdir={spark_state / 'tmp'} -Dderby.system.home={spark_state}"
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
        "spark.driver.extraJavaOptions": java_options,
        "spark.executor.extraJavaOptions": java_options,
        "spark.driver.memory": settings.spark_driver_memory,
        "spark.driver.host": settings.bind_host,
        "spark.driver.bindAddress": settings.bind_host,
        "spark.ui.port": str(settings.spark_ui_port),
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": "4",
        "spark.sql.sources.partitionOverwriteMode": "dynamic",
    }


def spark_environment(settings: Settings) -> dict[str, str]:
    """Environment variables a Spark driver needs before its JVM starts."""
    return {
        "SPARK_LOCAL_IP": settings.bind_host,  # the UI and block manager bind here, not 0.0.0.0
        "SPARK_HOME": str(deps.spark_home()),
        "PYSPARK_PYTHON": os.environ.get("PYSPARK_PYTHON", _python()),
    }


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


def _python() -> str:
    import sys

    return sys.executable
