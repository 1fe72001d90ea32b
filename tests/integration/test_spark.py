"""Spark against the real services: the Kafka source (connector jars) and the shared Hive catalogue."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from confluent_kafka import Producer

from app.runtime.service import Service
from app.settings import Settings
from app.spark_session import spark_environment, spark_submit_command
from tests.integration.kafka_helpers import create_topic

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

APPS = Path(__file__).parent / "apps"


def test_kafka_source_reads_only_committed_records(kafka: Service, settings: Settings, spark: SparkSession) -> None:
    topic = create_topic(settings)
    producer = Producer({"bootstrap.servers": settings.kafka_servers, "transactional.id": f"tx-{topic}"})
    producer.init_transactions(30)
    producer.begin_transaction()
    for number in range(50):
        producer.produce(topic, key=str(number).encode(), value=json.dumps({"click": number}).encode())
    producer.commit_transaction(30)
    producer.begin_transaction()
    producer.produce(topic, key=b"x", value=json.dumps({"click": -1}).encode())
    producer.flush(30)
    producer.abort_transaction(30)

    stream = (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", settings.kafka_servers)
        .option("kafka.isolation.level", "read_committed")
        .option("subscribe", topic)
        .option("startingOffsets", "earliest")
        .load()
        .selectExpr("CAST(value AS STRING) AS value")
        .selectExpr("CAST(get_json_object(value, '$.click') AS INT) AS click")
    )
    query = stream.writeStream.format("memory").queryName(f"clicks_{topic.replace('-', '_')}")
    running = query.trigger(availableNow=True).start()
    try:
        running.awaitTermination(120)
    finally:
        running.stop()
    clicks = sorted(row.click for row in spark.table(f"clicks_{topic.replace('-', '_')}").collect())
    assert clicks == list(range(50))


def test_hive_table_shared_between_running_applications(
    metastore: Service, settings: Settings, spark: SparkSession, tmp_path: Path
) -> None:
    table = f"default.shared_{uuid.uuid4().hex[:8]}"
    ready, release = tmp_path / "ready", tmp_path / "release"
    command = spark_submit_command(settings, str(APPS / "hold_table.py"), [table, str(ready), str(release)])
    # the helper needs no UI of its own
    command[1:1] = ["--conf", "spark.ui.enabled=false"]
    writer = subprocess.Popen(
        command,
        env={**os.environ, **spark_environment(settings)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 180
        while not ready.exists():
            assert writer.poll() is None, (
                f"writer exited early:\n{writer.stdout.read()[-3000:] if writer.stdout else ''}"
            )
            assert time.monotonic() < deadline, "writer did not write the table within 180 s"
            time.sleep(0.5)
        assert writer.poll() is None  # the first application is still running...
        rows = spark.table(table).orderBy("id").collect()  # ...while this one reads its table
        assert len(rows) == 100
        assert (rows[7].id, rows[7].doubled) == (7, 14)
        assert writer.poll() is None
    finally:
        release.touch()
        try:
            writer.wait(120)
        finally:
            if writer.poll() is None:
                writer.kill()
    assert writer.returncode == 0


def test_three_hundred_hours_are_picked_from_the_metastore(
    metastore: Service, settings: Settings, spark: SparkSession, tmp_path: Path
) -> None:
    """A drain after a backlog touches every hour of it: the clicks of the whole data set fall in
    207. An OR of one (dt, hour) term per hour made the metastore's Derby refuse the query as too
    complex (found by `make bench`), so such a micro-batch failed every time it ran."""
    from datetime import UTC, datetime, timedelta

    from app.hours import hour_partition
    from spark_jobs.pipeline import hours_filter
    from spark_jobs.tables import BatchTag, TableStore
    from tests.conftest import own_pipeline

    store = TableStore(spark, own_pipeline(settings, tmp_path))
    store.ensure_tables()
    spec = store.tables["raw_clicks"]
    start = datetime(2017, 10, 1, tzinfo=UTC)
    hours = [((start + timedelta(hours=n)).strftime("%Y-%m-%d"), (start + timedelta(hours=n)).hour) for n in range(300)]
    rows = [
        {**dict.fromkeys(spec.schema.fieldNames()), "user_id": n, "dt": dt, "hour": hour}
        for n, (dt, hour) in enumerate(hours)
    ]
    appended = store.append("raw_clicks", spark.createDataFrame(rows, spec.schema), BatchTag(str(uuid.uuid4()), 0))
    assert len(appended) == 300
    # as the jobs read them: by the folders the metastore names for those partitions
    picked = hours[3:297:2]
    read = store.read_partitions("raw_clicks", [hour_partition(hour) for hour in picked])
    assert {(row.dt, row.hour) for row in read.select("dt", "hour").collect()} == set(picked)
    # as Spark SQL reads them through the metastore, with the filter the jobs use on hours
    raw = spark.table(f"`{store.database}`.`raw_clicks`")
    assert raw.where(hours_filter(hours)).count() == 300
    found = {(row.dt, row.hour) for row in raw.where(hours_filter(picked)).select("dt", "hour").collect()}
    assert found == set(picked)
    assert raw.where(hours_filter([])).count() == 0


def test_local_spark_writes_files_without_a_chmod_process_and_with_the_usual_permissions(
    spark: SparkSession, tmp_path: Path
) -> None:
    """On a local master Spark's `file:` paths go through jvm/spark-local-fs, which sets permissions
    through Java instead of starting a `chmod` process per file and folder; the files and folders
    get the modes Hadoop's own file system gives them (its default umask, 022)."""
    from app.runtime import deps

    jvm = spark._jvm
    assert jvm is not None
    file_system = jvm.org.apache.hadoop.fs.FileSystem.get(
        jvm.java.net.URI("file:///"), spark.sparkContext._jsc.hadoopConfiguration()
    )
    assert file_system.getClass().getName() == deps.SPARK_LOCAL_FS_CLASS
    out = tmp_path / "written"
    rows = [{"value": n, "dt": f"2017-10-0{n % 3 + 1}", "hour": n % 5} for n in range(60)]
    spark.createDataFrame(rows).write.partitionBy("dt", "hour").parquet(str(out))
    data_files = list(out.glob("dt=*/hour=*/*.parquet"))
    folders = [path for path in out.rglob("*") if path.is_dir()]
    assert len(data_files) >= 15 and len(folders) == 3 + 15
    assert {path.stat().st_mode & 0o777 for path in data_files} == {0o644}
    assert {path.stat().st_mode & 0o777 for path in folders} == {0o755}
    assert all(path.with_name(f".{path.name}.crc").exists() for path in data_files)  # checksums as before


def test_a_local_driver_maps_the_class_archive_made_at_setup(settings: Settings, tmp_path: Path) -> None:
    """`make setup` archived the classes a job loads (app/runtime/spark_class_archive.py); a driver
    started with the project's Spark configuration maps that archive. With `-Xshare:on` the JVM
    refuses to start unless it can (another JVM build, another class path), instead of quietly
    loading every class again."""
    from dataclasses import replace

    from app.runtime.spark_class_archive import ARCHIVE

    assert ARCHIVE.exists(), "make setup makes the archive"
    options = f"{settings.spark_driver_java_options} -Xshare:on"  # the tests' own options too
    strict = replace(settings, spark_master="local[1]", spark_driver_java_options=options)
    app = tmp_path / "count.py"
    app.write_text(
        "from pyspark.sql import SparkSession\n"
        "spark = SparkSession.builder.getOrCreate()\n"
        "print('counted', spark.range(7).count())\n"
        "spark.stop()\n"
    )
    command = spark_submit_command(strict, str(app))
    command[1:1] = ["--conf", "spark.ui.enabled=false"]
    result = subprocess.run(
        command, env={**os.environ, **spark_environment(strict)}, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0 and "counted 7" in result.stdout, result.stdout[-2000:] + result.stderr[-3000:]
