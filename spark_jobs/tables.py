"""How the Spark jobs write the tables of the catalogue (`app/table_catalog.py`): three write paths,
each costing what it writes, never what a table holds.

- **Append** (raw tables). A micro-batch's rows are written by Spark into a hidden staging folder
  (`<table>/_staging/<batch>`), one file per partition, then each file is renamed into its
  partition's folder under a name made of the streaming query's id and the batch id
  (`batch-<query>-<batch>-000.parquet`), and the partitions that are new are registered in one
  metastore call. A replayed micro-batch (after a crash, Spark runs the same offsets with the same
  batch id) renames the same files onto the same names: it adds nothing. Nothing already in a
  table is read or rewritten.
- **Replace** (aggregate partitions, the buckets of `articles`). New rows go to a new version
  folder (`<table>/versions/<write id>/...`; not `_versions`, since Spark skips paths that start
  with `_` or `.`), and the metastore is pointed at it in one call for all partitions of the write
  (`alter_partitions`), so a reader through the metastore sees a partition before or after a
  write, never half of one. Two applications writing at once never share a folder.
- **Compact** (raw tables). The files of a partition are merged into one in a new version folder,
  with the files that must stay apart (a batch not committed yet) linked beside it, and the
  partition is pointed at it: readers see the old files or the new ones. `Pipeline` decides when.

Every partition write also records the partition's rows, files and bytes as Hive's basic statistics
(`numRows`, `numFiles`, `totalSize`) in the same metastore call (an append adds its files' figures
to the partition's, counting the folder again only when a listing disagrees with them), so
readers such as the pipeline view learn a table's rows without opening its files.

A folder that a partition no longer points at is retired (a marker in `<table>/_retired/`) and
deleted after `VERSION_GRACE_SECONDS`, so queries already reading it can finish; deleting looks at
the markers only, never at the whole table. Partition changes go through the metastore's thrift
API (`app/metastore.py`); schemas come from the catalogue's transforms applied to an empty input.
Table folders are `Location`s (`app/storage.py`): a local folder or an `hdfs://` one. Spark writes
and reads them through Hadoop's FileSystem; the renames, listings, markers and deletions here go
through the storage layer, which speaks the same schemes. Renames are atomic on both stores.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
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

from app.metastore import Metastore, MetastoreUnreachable, PartitionEntry, PartitionStats, partition_values
from app.parquet_folders import describes, folder_stats, in_parallel, parquet_files
from app.schemas import ARTICLES, CLICKS
from app.settings import Settings
from app.storage import Location
from app.table_catalog import TABLES, Home, Source, Table
from spark_jobs import transforms as T

log = logging.getLogger(__name__)

VERSION_GRACE_SECONDS = 300.0
STAGING = "_staging"  # hidden from readers: Spark skips folders whose names start with `_`
RETIRED = "_retired"
SINCE_FIRST_CLICK = "_since_first_click"  # at the root of an index table created before raw_clicks held a row
FEW_ROWS = 50_000  # a write of at most this many rows goes through one task, without a shuffle
BATCH_FILE = re.compile(r"^batch-(?P<query>[0-9a-f-]+)-(?P<batch>\d{10})-\d{3}\.parquet$")
COMPACTED_FILE = re.compile(r"^compacted-(?P<level>\d)-[0-9a-f]{32}\.parquet$")
FINAL_LEVEL = 9  # the one file a closed partition is merged into

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
    table: Table
    root: Location
    schema: StructType  # data columns then partition columns

    @property
    def name(self) -> str:
        return self.table.name

    @property
    def partition_columns(self) -> tuple[str, ...]:
        return self.table.partition_columns

    @property
    def data_fields(self) -> list[StructField]:
        return [f for f in self.schema.fields if f.name not in self.partition_columns]

    @property
    def partition_fields(self) -> list[StructField]:
        return [self.schema[name] for name in self.partition_columns]


@dataclass(frozen=True)
class BatchTag:
    """One micro-batch of one streaming query: what names the files it appends."""

    query_id: str
    batch_id: int

    @property
    def prefix(self) -> str:
        return f"batch-{self.query_id}-{self.batch_id:010d}"

    def is_not_before(self, file_name: str) -> bool:
        """Whether a file was appended by this batch or a later one of the same query (not committed yet)."""
        found = BATCH_FILE.match(file_name)
        return bool(found and found["query"] == self.query_id and int(found["batch"]) >= self.batch_id)


def empty_inputs(spark: SparkSession) -> dict[Source, DataFrame]:
    """An empty DataFrame of every kind of input a table's transform takes."""
    empty_kafka = spark.createDataFrame([], KAFKA_SOURCE_SCHEMA)
    click_records = T.parse_records(empty_kafka, {"clicks": CLICKS})
    article_records = T.parse_records(empty_kafka, {"articles": ARTICLES})
    raw_articles = T.raw_articles(article_records)
    enriched = T.enrich_clicks(T.click_facts(T.raw_clicks(click_records)), T.latest_articles(raw_articles))
    return {
        Source.CLICK_RECORDS: click_records,
        Source.ANY_RECORDS: click_records,
        Source.ARTICLE_RECORDS: article_records,
        Source.RAW_ARTICLES: raw_articles,
        Source.ENRICHED_CLICKS: enriched,
        Source.SESSION_CLICKS: enriched,
        Source.DAY_CLICKS: enriched,
        Source.RAW_CLICKS: T.raw_clicks(click_records),
    }


def table_specs(spark: SparkSession, settings: Settings) -> dict[str, TableSpec]:
    """Every table of the catalogue with its folder and schema (its transform applied to an empty input,
    or, for a table written without Spark, its declared columns)."""
    inputs = empty_inputs(spark)
    homes = {
        Home.LAKE: settings.parquet_destination_path,
        Home.WAREHOUSE: settings.hive_warehouse_dir / f"{settings.hive_database}.db",
    }
    specs = {}
    for table in TABLES:
        if table.transform is None:
            declared = [*table.columns, *((column, "string") for column in table.partition_columns)]
            rows = spark.createDataFrame([], ", ".join(f"`{name}` {kind}" for name, kind in declared))
        else:
            rows = T.TABLE_TRANSFORMS[table.transform](inputs[table.source])
        specs[table.name] = TableSpec(table, homes[table.home] / table.name, rows.schema)
    return specs


class TableStore:
    """Creates the tables once and writes them: appends, partition replacements, compactions."""

    def __init__(self, spark: SparkSession, settings: Settings) -> None:
        self.spark = spark
        self.settings = settings
        self.database = settings.hive_database
        self.tables = table_specs(spark, settings)
        self.metastore = Metastore(settings.hive_metastore_uri, settings.hive_database)

    def qualified(self, name: str) -> str:
        return f"`{self.database}`.`{name}`"

    def ensure_tables(self) -> None:
        """Create the database and every missing table (a concurrent creator is tolerated); a table
        that exists with other partition columns stops the job, naming it. The `user_hours` index,
        when created while `raw_clicks` holds no partition, gets a `SINCE_FIRST_CLICK` marker: it
        will have seen every click (`indexes_every_click`); created later, it must be built once."""
        existing = self.metastore.tables()  # through thrift: Spark's Hive client starts only to create
        if not existing:
            self.spark.sql(f"CREATE DATABASE IF NOT EXISTS `{self.database}`")
        for spec in self.tables.values():
            if spec.name in existing:
                found = tuple(self.metastore.partition_keys(spec.name))
                if found != spec.partition_columns:
                    raise RuntimeError(
                        f"table {self.database}.{spec.name} is partitioned by {found or 'nothing'}, this version "
                        f"writes it partitioned by {spec.partition_columns}: drop it (it is rebuilt from the raw "
                        "tables by recompute_hours) or set HIVE_DATABASE to a new database"
                    )
                self._add_new_columns(spec)
                continue
            columns = ", ".join(f"`{f.name}` {f.dataType.simpleString()}" for f in spec.data_fields)
            parts = ", ".join(f"`{f.name}` {f.dataType.simpleString()}" for f in spec.partition_fields)
            spec.root.mkdir()
            try:
                self.spark.sql(
                    f"CREATE EXTERNAL TABLE IF NOT EXISTS {self.qualified(spec.name)} ({columns}) "
                    f"PARTITIONED BY ({parts}) STORED AS PARQUET LOCATION '{spec.root.uri}'"
                )
            except AnalysisException as error:
                if "already exists" not in str(error).lower():
                    raise
            if spec.name == "user_hours" and not self.metastore.partition_names("raw_clicks"):
                (spec.root / SINCE_FIRST_CLICK).write_text("created before raw_clicks held a click\n")

    def indexes_every_click(self) -> bool:
        """Whether `user_hours` names the hours of every click `raw_clicks` ever took (else an
        erasure builds it from `raw_clicks` once, `mark_indexed`)."""
        return (self.tables["user_hours"].root / SINCE_FIRST_CLICK).exists()

    def mark_indexed(self) -> None:
        (self.tables["user_hours"].root / SINCE_FIRST_CLICK).write_text("built from every raw click\n")

    def _add_new_columns(self, spec: TableSpec) -> None:
        """Data columns this version writes that an existing table lacks are added at its end (files
        written before read them as null)."""
        known = {column.name for column in self.metastore.table(spec.name).sd.cols}
        new = [f for f in spec.data_fields if f.name not in known]
        if new:
            columns = ", ".join(f"`{f.name}` {f.dataType.simpleString()}" for f in new)
            try:
                self.spark.sql(f"ALTER TABLE {self.qualified(spec.name)} ADD COLUMNS ({columns})")
            except AnalysisException as error:  # another job starting at once added them first
                if "already exists" not in str(error).lower() and "duplicate" not in str(error).lower():
                    raise
            log.info("%s: added column(s) %s", spec.name, ", ".join(f.name for f in new))

    def read_partitions(self, name: str, names: list[str] | None = None, skip: Iterable[str] = ()) -> DataFrame:
        """The rows of those partitions of a table (every one when `names` is None, less `skip`), read
        from the folders the metastore names, with the partition columns taken from the folder names.

        No partition filter goes to the metastore: Hive's filter on an integer partition key (`bucket`,
        `hour`) casts every key value of the metastore, and on Derby it fails once another table's
        values are text, while its fallback refuses integer keys altogether."""
        spec = self.tables[name]
        skipped = set(skip)
        folders = [
            folder
            for partition, folder in self.metastore.partition_locations(name, names).items()
            if partition not in skipped
        ]
        if not folders:
            return self.spark.createDataFrame([], spec.schema)
        rows = self.spark.read.schema(StructType(spec.data_fields)).parquet(*folders)
        for field in spec.partition_fields:
            value = F.regexp_extract(F.input_file_name(), f".*/{field.name}=([^/]+)/", 1)  # its last such folder
            rows = rows.withColumn(field.name, value.cast(field.dataType))
        return rows

    # --- append: raw tables ----------------------------------------------------------------------

    def append(self, name: str, rows: DataFrame, batch: BatchTag, count: int | None = None) -> dict[str, int]:
        """Add `rows` (`count` of them, when known) to their partitions as files named after `batch`;
        returns the rows per partition.

        Only the new rows are written. A replay of the same batch writes the same files under the
        same names, so it adds nothing."""
        started = time.monotonic()
        spec = self.tables[name]
        staging = spec.root / STAGING / batch.prefix
        staging.remove_tree()  # what a crashed run of the same batch left
        # appended into: an S3 store may still show the emptied folder (SeaweedFS drops it later)
        written = self._write(spec, rows, staging, count, mode="append")
        if not written:
            staging.remove_tree()
            return {}
        landed = {partition: folder_stats(staging / partition) for partition in written}
        counts = {partition: stats.rows for partition, stats in landed.items()}
        current = self.metastore.partitions(name, list(written))
        new, stats = {}, {}
        for partition, files in written.items():
            entry = current.get(partition)
            folder = Location.parse(entry.location) if entry else spec.root / partition
            folder.mkdir()
            targets = [folder / f"{batch.prefix}-{number:03d}.parquet" for number in range(len(files))]
            before = _trusted_stats(entry, folder, targets)
            for file, target in zip(files, targets, strict=True):
                file.replace(target)
            stats[partition] = before + landed[partition] if before is not None else folder_stats(folder)
            if entry is None:
                new[partition] = str(folder)
        self.metastore.add_partitions(name, new, stats)  # after the files are in place
        self.metastore.set_stats(name, {partition: stats[partition] for partition in written if partition not in new})
        staging.remove_tree()
        log.info(
            "%s: appended %s row(s) to %s partition(s) (%s new) in %.1f s",
            name, sum(counts.values()), len(written), len(new), time.monotonic() - started,
        )  # fmt: skip
        return counts

    # --- replace: aggregates and dimension buckets ---------------------------------------------

    def replace_partitions(self, name: str, rows: DataFrame) -> list[str]:
        """Write `rows` as whole new versions of the partitions they fall in; returns those partitions."""
        started = time.monotonic()
        spec = self.tables[name]
        target = self._new_version_folder(spec)
        written = self._write(spec, rows, target)
        if not written:
            target.remove_tree()
            return []
        pointing = time.monotonic()
        self._point_at({partition: target / partition for partition in written}, spec)
        log.info(
            "%s: replaced %s partition(s) with version %s in %.1f s (of which %.1f s in the metastore)",
            name, len(written), target.name, time.monotonic() - started, time.monotonic() - pointing,
        )  # fmt: skip
        return sorted(written)

    def rewrite_partitions(self, name: str, partitions: list[str], rows: DataFrame) -> dict[str, PartitionStats]:
        """Replace those partitions of a table, each whole, with `rows` (which must fall in them): a
        partition `rows` holds nothing of stays, pointing at an empty folder. An erasure writes what
        a raw partition keeps this way; its caller holds the stream's lock, since an append beside
        it would land in a folder it retires."""
        started = time.monotonic()
        spec = self.tables[name]
        target = self._new_version_folder(spec)
        written = self._write(spec, rows, target)
        stray = sorted(set(written) - set(partitions))
        if stray:
            raise ValueError(f"{name}: rows of partitions not being rewritten: {stray[:5]}")
        folders = {}
        for partition in partitions:
            folders[partition] = target / partition
            folders[partition].mkdir()
        stats = self._point_at(folders, spec)
        log.info(
            "%s: rewrote %s partition(s) with version %s in %.1f s",
            name, len(partitions), target.name, time.monotonic() - started,
        )  # fmt: skip
        return stats

    def empty_partitions(self, name: str, partitions: list[str]) -> None:
        """Point those partitions at empty folders: what an hour or a day keeps once an erasure left
        it no clicks (its old rows must not outlive the raw rows they were built from)."""
        if partitions:
            self.rewrite_partitions(name, partitions, self.spark.createDataFrame([], self.tables[name].schema))

    # --- compact: raw tables ----------------------------------------------------------------------

    def partition_files(self, name: str, partitions: list[str]) -> dict[str, list[Location]]:
        """The data files of those partitions that exist, by partition name."""
        locations = self.metastore.partition_locations(name, partitions)
        return {partition: parquet_files(location) for partition, location in locations.items()}

    def compact(
        self,
        name: str,
        partitions: list[str],
        closed: Callable[[str], bool],
        files_per_level: int,
        uncommitted: BatchTag | None = None,
        final: bool = False,
        closed_max_files: int = 1,
    ) -> dict[str, int]:
        """Merge the files of those partitions that have too many; returns the files each has after.

        Level by level: `files_per_level` files of one level become one file of the next, so a row
        is rewritten about once per level, not once per micro-batch. With `final`, a closed
        partition (no more rows expected in the normal course) with more than `closed_max_files`
        files is merged into one file. Files of
        `uncommitted` and later batches are never merged (a replay of that batch renames its file
        again): they are linked beside the merged file."""
        spec = self.tables[name]
        files = self.partition_files(name, partitions)
        plans: dict[str, tuple[list[Location], int]] = {}
        for partition, present in files.items():
            mergeable = [f for f in present if uncommitted is None or not uncommitted.is_not_before(f.name)]
            if final and closed(partition):
                if len(mergeable) > 1 and len(present) > closed_max_files:
                    plans[partition] = (mergeable, FINAL_LEVEL)
                continue
            for level in range(FINAL_LEVEL):
                same_level = [f for f in mergeable if _level(f) == level]
                if len(same_level) >= files_per_level:
                    plans[partition] = (same_level, level + 1)
                    break
        after = {partition: len(present) for partition, present in files.items()}
        if not plans:
            return after
        started = time.monotonic()
        target = self._new_version_folder(spec)
        reads = []
        for partition, (merged, _) in plans.items():
            values = partition_values(partition)
            frame = self.spark.read.schema(StructType(spec.data_fields)).parquet(*[f.uri for f in merged])
            for field in spec.partition_fields:
                frame = frame.withColumn(field.name, F.lit(values[field.name]).cast(field.dataType))
            reads.append(frame)
        union = reads[0]
        for frame in reads[1:]:
            union = union.unionByName(frame)
        written = self._write(spec, union, target)
        folders = {}
        for partition, (merged, level) in plans.items():
            folder = target / partition
            folder.mkdir()
            for file in written.get(partition, []):
                file.replace(folder / f"compacted-{level}-{uuid.uuid4().hex}.parquet")
            for kept in sorted(set(files[partition]) - set(merged)):
                kept.link_or_copy(folder / kept.name)
            folders[partition] = folder
        after.update({partition: stats.files for partition, stats in self._point_at(folders, spec).items()})
        log.info(
            "%s: compacted %s partition(s) (%s file(s) merged) in %.1f s",
            name, len(plans), sum(len(merged) for merged, _ in plans.values()), time.monotonic() - started,
        )  # fmt: skip
        return after

    # --- retired folders ------------------------------------------------------------------------

    def remove_retired(self, grace_seconds: float = VERSION_GRACE_SECONDS) -> int:
        """Delete the folders that partitions stopped pointing at more than `grace_seconds` ago."""
        removed = 0
        cutoff = time.time() - grace_seconds
        for spec in self.tables.values():
            for entry in (spec.root / RETIRED).entries():
                marker = entry.location
                retired_at = int(marker.name.split("-", 1)[0]) / 1e9 if marker.name[:1].isdigit() else 0.0
                if retired_at > cutoff:
                    continue
                folder = Location.parse(marker.read_text().strip())
                if folder != spec.root and folder.is_relative_to(spec.root) and folder.is_dir():
                    folder.remove_tree()
                    _remove_empty_parents(folder, spec.root)
                    removed += 1
                marker.unlink()
        return removed

    # --- health -----------------------------------------------------------------------------------

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
            if problem := _write_probe(spec.root / STAGING):
                lake = spec.table.home is Home.LAKE
                problems.append(f"{'PARQUET_DESTINATION_PATH' if lake else 'HIVE_WAREHOUSE_DIR'}={folder}: {problem}")
        return problems

    def unreachable_metastore(self) -> list[str]:
        """A sentence naming the metastore and its settings when it does not answer now."""
        try:
            self.metastore.tables()
        except (MetastoreUnreachable, OSError) as error:
            return [f"{error} (HIVE_METASTORE_HOST, HIVE_METASTORE_PORT)"]
        return []

    def wait_for_metastore(self, timeout: float) -> bool:
        """Whether the metastore answers again within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while self.unreachable_metastore():
            if time.monotonic() > deadline:
                return False
            time.sleep(2)
        return True

    # --- helpers ----------------------------------------------------------------------------------

    def _write(
        self, spec: TableSpec, rows: DataFrame, folder: Location, count: int | None = None, mode: str = "errorifexists"
    ) -> dict[str, list[Location]]:
        """Spark writes `rows` under `folder` partitioned like the table, one file per partition
        (every task wrote a file into every partition it met, four small files per hour and table),
        by as many tasks as a shuffle has, or, for at most `FEW_ROWS` rows (`count`, when the caller
        knows it), by one task without a shuffle: a small micro-batch saves a Spark job per table.
        Returns the files written per partition name. `mode` is Spark's: a new folder must not exist."""
        columns = rows.select(*[f.name for f in spec.schema.fields])
        if count is not None and count <= FEW_ROWS:
            ordered = columns.coalesce(1)
        else:
            tasks = int(self.spark.conf.get("spark.sql.shuffle.partitions") or "4")
            ordered = columns.repartition(tasks, *spec.partition_columns)
        ordered.write.mode(mode).partitionBy(*spec.partition_columns).parquet(folder.uri)
        found = [folder]
        for column in spec.partition_columns:  # one listing per level of partition folders
            found = [e.location for f in found for e in f.entries() if e.is_dir and e.name.startswith(f"{column}=")]
        written = {partition.relative_to(folder): parquet_files(partition) for partition in found}
        return {partition: files for partition, files in sorted(written.items()) if files}

    def _point_at(self, folders: dict[str, Location], spec: TableSpec) -> dict[str, PartitionStats]:
        """Point partitions at new folders (existing ones in one call, new ones in another), with
        their statistics, and retire the folders they pointed at; returns the statistics."""
        names = list(folders)
        stats = dict(zip(names, in_parallel(folder_stats, [folders[p] for p in names]), strict=True))
        current = self.metastore.partition_locations(spec.name, names)
        previous = self.metastore.move_partitions(
            spec.name, {p: str(folders[p]) for p in folders if p in current}, stats
        )
        self.metastore.add_partitions(spec.name, {p: str(folders[p]) for p in folders if p not in current}, stats)
        markers = spec.root / RETIRED
        for folder in previous.values():
            (markers / f"{time.time_ns()}-{uuid.uuid4().hex[:8]}").write_text(str(Location.parse(folder)))
        return stats

    def _new_version_folder(self, spec: TableSpec) -> Location:
        write_id = f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"
        folder = spec.root / "versions" / write_id
        folder.parent.mkdir()
        return folder


def _trusted_stats(entry: PartitionEntry | None, folder: Location, targets: list[Location]) -> PartitionStats | None:
    """The statistics of a raw partition's folder before an append, when they can be added to
    instead of reading every footer again: the metastore's figures when one listing of the folder
    agrees with them (a crash between an earlier rename and its statistics update leaves them
    behind), nothing for a new, empty folder; None when they must be counted again (and on a
    replay, whose files replace files already counted)."""
    if any(target.exists() for target in targets):
        return None
    before = PartitionStats(0, 0, 0) if entry is None else entry.stats
    return before if describes(before, folder) else None


def _level(file: Location) -> int:
    found = COMPACTED_FILE.match(file.name)
    return int(found["level"]) if found else 0


def _write_probe(folder: Location) -> str | None:
    """None when a file can be created and written in `folder` (or where it would be made); else why not."""
    target = folder
    while not target.exists() and target != target.parent:
        target = target.parent
    probe = target / f".write-probe-{uuid.uuid4().hex}"
    try:
        if not probe.is_local:
            probe.write_text("\0" * 65536)
            return None
        with open(probe.local_path, "wb") as handle:
            handle.write(b"\0" * 65536)  # more than a directory entry: a full disk refuses it
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as error:
        free = f"; {shutil.disk_usage(target.local_path).free:,} bytes free" if target.is_local else ""
        return f"cannot write in {target} ({getattr(error, 'strerror', None) or error}{free})"
    finally:
        probe.unlink()
    return None


def _remove_empty_parents(folder: Location, root: Location) -> None:
    parent = folder.parent
    while parent != root and parent.is_relative_to(root):
        if not parent.remove_if_empty():
            return
        parent = parent.parent
