"""The Hive tables of clickstream and the one way they are written: whole partitions, swapped atomically.

Every write goes to a new, uniquely named version folder (`<table>/versions/<write id>/...`; not
`_versions`, since Spark skips every path with a component that starts with `_` or `.`) and
then the metastore is pointed at it (`ALTER TABLE ... PARTITION ... SET LOCATION`, or `SET
LOCATION` for an unpartitioned table). A reader that goes through the metastore (Hive, Spark SQL,
the Thrift server) therefore sees a partition before or after a write, never half of one, and a
replayed micro-batch that rewrites a partition gives the same rows. Two applications writing at
once never share a folder, so Hadoop's committer cannot collide. Versions that no partition uses
any more are deleted after a grace period, so queries already reading them can finish.

Table schemas are derived from the transforms (applied to an empty input), so they are defined
once. Locations are on the local file system (the state folder, or a shared mount on a cluster).
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import (
    ArrayType,
    BinaryType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from app.schemas import ARTICLES, CLICKS
from app.settings import Settings
from spark_jobs import transforms as T

log = logging.getLogger(__name__)

VERSION_GRACE_SECONDS = 300.0

KAFKA_SOURCE_SCHEMA = StructType(
    [
        StructField("key", BinaryType()),
        StructField("value", BinaryType()),
        StructField("topic", StringType()),
        StructField("partition", IntegerType()),
        StructField("offset", LongType()),
        StructField("timestamp", TimestampType()),
        StructField("timestampType", IntegerType()),
        StructField(
            "headers",
            ArrayType(StructType([StructField("key", StringType()), StructField("value", BinaryType())])),
        ),
    ]
)


@dataclass(frozen=True)
class TableSpec:
    name: str
    root: Path
    schema: StructType  # data columns then partition columns
    partition_columns: tuple[str, ...]

    @property
    def data_fields(self) -> list[StructField]:
        return [f for f in self.schema.fields if f.name not in self.partition_columns]

    @property
    def partition_fields(self) -> list[StructField]:
        return [self.schema[name] for name in self.partition_columns]


def table_specs(spark: SparkSession, settings: Settings) -> dict[str, TableSpec]:
    """Every table: raw clicks, raw articles and quarantine in the lake; the rest in the warehouse."""
    empty_kafka = spark.createDataFrame([], KAFKA_SOURCE_SCHEMA)
    clicks_parsed = T.parse_records(empty_kafka, CLICKS)
    articles_parsed = T.parse_records(empty_kafka, ARTICLES)
    raw_clicks = T.raw_clicks(clicks_parsed)
    raw_articles = T.raw_articles(articles_parsed)
    articles = T.latest_articles(raw_articles)
    enriched = T.enrich_clicks(raw_clicks, articles)
    lake = settings.parquet_destination_path
    warehouse = settings.hive_warehouse_dir / f"{settings.hive_database}.db"
    hourly = ("dt", "hour")
    definitions = [
        ("raw_clicks", lake, raw_clicks, hourly),
        ("raw_articles", lake, raw_articles, ("dt",)),
        ("quarantine", lake, T.quarantined(clicks_parsed), ("dt",)),
        ("articles", warehouse, articles, ()),
        ("article_hourly", warehouse, T.article_hourly(enriched), hourly),
        ("category_hourly", warehouse, T.category_hourly(enriched), hourly),
        ("context_hourly", warehouse, T.context_hourly(raw_clicks), hourly),
        ("sessions", warehouse, T.session_summary(enriched), hourly),
    ]
    return {
        name: TableSpec(name, folder / name, frame.schema, partitions)
        for name, folder, frame, partitions in definitions
    }


class TableStore:
    """Creates the tables once and replaces their partitions atomically."""

    def __init__(self, spark: SparkSession, settings: Settings) -> None:
        self.spark = spark
        self.settings = settings
        self.database = settings.hive_database
        self.tables = table_specs(spark, settings)

    def qualified(self, name: str) -> str:
        return f"`{self.database}`.`{name}`"

    def ensure_tables(self) -> None:
        """Create the database and every missing table (a concurrent creator is tolerated)."""
        self.spark.sql(f"CREATE DATABASE IF NOT EXISTS `{self.database}`")
        for spec in self.tables.values():
            columns = ", ".join(f"`{f.name}` {f.dataType.simpleString()}" for f in spec.data_fields)
            partitioned = ""
            if spec.partition_columns:
                parts = ", ".join(f"`{f.name}` {f.dataType.simpleString()}" for f in spec.partition_fields)
                partitioned = f" PARTITIONED BY ({parts})"
            spec.root.mkdir(parents=True, exist_ok=True)
            try:
                self.spark.sql(
                    f"CREATE EXTERNAL TABLE IF NOT EXISTS {self.qualified(spec.name)} ({columns}){partitioned} "
                    f"STORED AS PARQUET LOCATION '{_location(spec.root)}'"
                )
            except AnalysisException as error:
                if "already exists" not in str(error).lower():
                    raise

    def table(self, name: str) -> DataFrame:
        return self.spark.table(self.qualified(name))

    def unwritable_folders(self) -> list[str]:
        """Why each table folder that cannot take a new file right now cannot, naming its setting.

        Called after a write failed, to tell a full or read-only destination from other failures.
        A free-space figure is given with each, since a failed write deletes what it had written.
        """
        problems, probed = [], set()
        for spec in self.tables.values():
            folder = spec.root.parent
            if folder in probed:
                continue
            probed.add(folder)
            if problem := _write_probe(spec.root / "versions"):
                lake = folder == self.settings.parquet_destination_path
                problems.append(f"{'PARQUET_DESTINATION_PATH' if lake else 'HIVE_WAREHOUSE_DIR'}={folder}: {problem}")
        return problems

    def unreachable_metastore(self) -> list[str]:
        """A sentence naming the metastore and its settings when it does not accept connections now."""
        host, _, port = self.settings.hive_metastore_uri.removeprefix("thrift://").rpartition(":")
        try:
            socket.create_connection((host, int(port)), timeout=5).close()
        except OSError as error:
            return [
                f"the Hive Metastore at {self.settings.hive_metastore_uri} (HIVE_METASTORE_HOST, HIVE_METASTORE_PORT) "
                f"does not accept connections ({error.strerror or error})"
            ]
        return []

    def wait_for_metastore(self, timeout: float) -> bool:
        """Whether the metastore accepts connections again within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while self.unreachable_metastore():
            if time.monotonic() > deadline:
                return False
            time.sleep(2)
        return True

    def replace_partitions(self, name: str, rows: DataFrame, unique_by: Sequence[str] = ()) -> int:
        """Write `rows` as whole new versions of the partitions they fall in; return how many.

        With `unique_by`, one row per partition and key is kept (the raw tables: one per Kafka
        record, so a replayed batch adds nothing). A row's partition follows from its record, so
        that is one row per record, found in the shuffle that groups the rows by partition anyway
        (a separate one for the deduplication took a quarter of a raw table's write)."""
        spec = self.tables[name]
        if not spec.partition_columns:
            raise ValueError(f"{name} is not partitioned: use replace_table")
        started = time.monotonic()
        target = self._new_version_folder(spec)
        # one file per partition (every task wrote a file into every partition it met, four small
        # files per hour and table, which made writing and every later read slower), written by
        # as many tasks as a shuffle has: left to adaptive execution, the few rows of an
        # aggregate went to a single task, which wrote 200 files while the other cores idled
        tasks = int(self.spark.conf.get("spark.sql.shuffle.partitions") or "4")
        ordered = rows.select(*[f.name for f in spec.schema.fields]).repartition(tasks, *spec.partition_columns)
        if unique_by:
            ordered = ordered.dropDuplicates([*spec.partition_columns, *unique_by])
        ordered.write.mode("errorifexists").partitionBy(*spec.partition_columns).parquet(str(target))
        written = sorted(target.glob("/".join(f"{column}=*" for column in spec.partition_columns)))
        if not written:
            shutil.rmtree(target, ignore_errors=True)
            return 0
        existing = self._partitions(name)
        moved, new_partitions = [], []
        for folder in written:
            relative = folder.relative_to(target).as_posix()  # e.g. dt=2017-10-01/hour=3
            if relative in existing:
                moved.append(self._with_location(existing[relative], folder))
            else:
                clause = _partition_clause(spec, relative)
                new_partitions.append(f"PARTITION ({clause}) LOCATION '{_location(folder)}'")
        if moved:
            # one metastore call for all of them: an `ALTER TABLE ... PARTITION ... SET LOCATION` per
            # partition took a tenth of a second each, a third of a micro-batch touching 200 hours
            jvm = self.spark._jvm
            catalog = self.spark._jsparkSession.sharedState().externalCatalog()
            partitions = jvm.java.util.ArrayList()  # type: ignore[union-attr]
            for partition in moved:
                partitions.add(partition)
            seq = jvm.scala.jdk.javaapi.CollectionConverters.asScala(partitions).toSeq()  # type: ignore[union-attr]
            catalog.alterPartitions(self.database, name, seq)
            self.spark.catalog.refreshTable(self.qualified(name))
        if new_partitions:
            self.spark.sql(f"ALTER TABLE {self.qualified(name)} ADD IF NOT EXISTS {' '.join(new_partitions)}")
        log.info(
            "%s: replaced %s partition(s) with version %s in %.1f s",
            name, len(written), target.name, time.monotonic() - started,
        )  # fmt: skip
        return len(written)

    def replace_table(self, name: str, rows: DataFrame) -> None:
        """Write `rows` as a whole new version of an unpartitioned table."""
        started = time.monotonic()
        spec = self.tables[name]
        target = self._new_version_folder(spec)
        rows.select(*[f.name for f in spec.schema.fields]).write.mode("errorifexists").parquet(str(target))
        self.spark.sql(f"ALTER TABLE {self.qualified(name)} SET LOCATION '{_location(target)}'")
        log.info("%s: replaced with version %s in %.1f s", name, target.name, time.monotonic() - started)

    def remove_unused_versions(self, name: str, grace_seconds: float = VERSION_GRACE_SECONDS) -> int:
        """Delete version folders that no partition points at and that are older than the grace period."""
        spec = self.tables[name]
        versions = spec.root / "versions"
        if not versions.is_dir():
            return 0
        in_use = {Path(location).resolve() for location in self._locations(name)}
        cutoff = time.time() - grace_seconds
        depth = "/".join("*" for _ in spec.partition_columns)
        removed = 0
        for version in versions.iterdir():
            candidates = sorted(version.glob(depth)) if depth else [version]
            for folder in candidates:
                if folder.resolve() in in_use or folder.stat().st_mtime > cutoff:
                    continue
                shutil.rmtree(folder, ignore_errors=True)
                removed += 1
            if spec.partition_columns:
                _remove_empty_folders(version)
        return removed

    def snapshot(self, name: str) -> dict[str, str]:
        """Where each partition of a table lives now ("dt=.../hour=..." -> folder; "" for an
        unpartitioned table): a new location means a new version of that partition."""
        spec = self.tables[name]
        depth = len(spec.partition_columns)
        return {
            "/".join(Path(location).parts[-depth:]) if depth else "": location for location in self._locations(name)
        }

    def _locations(self, name: str) -> list[str]:
        """Where the metastore says the table's partitions (or the table) live, as local paths."""
        jvm = self.spark._jvm
        catalog = self.spark._jsparkSession.sharedState().externalCatalog()
        if not self.tables[name].partition_columns:
            uri = catalog.getTable(self.database, name).location()
            return [jvm.java.nio.file.Paths.get(uri).toString()]  # type: ignore[union-attr]
        partitions = catalog.listPartitions(self.database, name, jvm.scala.Option.empty())  # type: ignore[union-attr]
        found = []
        iterator = partitions.iterator()
        while iterator.hasNext():
            uri = iterator.next().location()
            found.append(jvm.java.nio.file.Paths.get(uri).toString())  # type: ignore[union-attr]
        return found

    def _partitions(self, name: str) -> dict[str, Any]:
        """The metastore's partitions of a table (Java objects) by name, e.g. "dt=2017-10-01/hour=3"."""
        jvm = self.spark._jvm
        catalog = self.spark._jsparkSession.sharedState().externalCatalog()
        spec = self.tables[name]
        found = {}
        iterator = catalog.listPartitions(self.database, name, jvm.scala.Option.empty()).iterator()  # type: ignore[union-attr]
        while iterator.hasNext():
            partition = iterator.next()
            values = partition.spec()
            found["/".join(f"{column}={values.apply(column)}" for column in spec.partition_columns)] = partition
        return found

    def _with_location(self, partition: Any, folder: Path) -> Any:
        """A copy of a metastore partition (Java) that points at `folder`."""
        jvm = self.spark._jvm
        storage = partition.storage()
        # CatalogStorageFormat has 7 fields in Spark 4.2 (pinned); all but the location stay
        kept = [getattr(storage, f"copy$default${number}")() for number in range(2, 8)]
        uri = jvm.java.net.URI(_location(folder))  # type: ignore[union-attr]
        moved = storage.copy(jvm.scala.Some(uri), *kept)  # type: ignore[union-attr]
        return partition.copy(
            partition.spec(),
            moved,
            partition.parameters(),
            partition.createTime(),
            partition.lastAccessTime(),
            partition.stats(),
        )

    def _new_version_folder(self, spec: TableSpec) -> Path:
        write_id = f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"
        folder = spec.root / "versions" / write_id
        folder.parent.mkdir(parents=True, exist_ok=True)
        return folder


def _write_probe(folder: Path) -> str | None:
    """None when a file can be created and written in `folder` (or where it would be made); else why not."""
    target = folder
    while not target.exists() and target != target.parent:
        target = target.parent
    probe = target / f".write-probe-{uuid.uuid4().hex}"
    try:
        with open(probe, "wb") as handle:
            handle.write(b"\0" * 65536)  # more than a directory entry: a full disk refuses it
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as error:
        return f"cannot write in {target} ({error.strerror or error}; {shutil.disk_usage(target).free:,} bytes free)"
    finally:
        probe.unlink(missing_ok=True)
    return None


def _location(folder: Path) -> str:
    """A folder as a metastore location. Not `Path.as_uri()`: it escapes the `=` of `dt=...`, and
    the metastore would then point at a folder that does not exist."""
    return f"file://{folder.resolve()}"


def _partition_clause(spec: TableSpec, relative: str) -> str:
    values = dict(part.split("=", 1) for part in relative.split("/"))
    clauses = []
    for field in spec.partition_fields:
        value = values[field.name]
        clauses.append(
            f"`{field.name}`='{value}'" if isinstance(field.dataType, StringType) else f"`{field.name}`={int(value)}"
        )
    return ", ".join(clauses)


def _remove_empty_folders(folder: Path) -> None:
    for child in sorted(folder.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if child.is_dir() and not any(child.iterdir()):
            child.rmdir()
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
