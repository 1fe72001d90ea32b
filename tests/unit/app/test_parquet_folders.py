"""Parquet folders read without Spark, and the rows the view takes from a partition's statistics."""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from app.metastore import PartitionEntry, PartitionStats
from app.parquet_folders import LocationUnreadable, folder_stats, listed_size, parquet_files, parquet_rows, read_columns
from app.pipeline_view import partition_rows
from app.table_catalog import TableKind


def write_rows(path: Path, rows: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"clicks": list(range(rows))}), path)


def partition(tmp_path: Path) -> Path:
    folder = tmp_path / "dt=2017-10-01" / "hour=3"
    write_rows(folder / "batch-a-000.parquet", 3)
    write_rows(folder / "batch-b-000.parquet", 4)
    write_rows(folder / "_staging" / "batch-c-000.parquet", 50)  # hidden: not data
    (folder / "_SUCCESS").write_text("")
    (folder / ".batch-a-000.parquet.crc").write_text("x")
    return folder


def test_data_files_leave_hidden_files_and_folders_out(tmp_path: Path) -> None:
    folder = partition(tmp_path)
    assert [path.name for path in parquet_files(str(folder))] == ["batch-a-000.parquet", "batch-b-000.parquet"]
    assert parquet_rows(f"file:{folder}") == 7
    stats = folder_stats(str(folder))
    assert (stats.rows, stats.files) == (7, 2)
    assert listed_size(str(folder)) == (stats.files, stats.bytes)
    assert folder_stats(str(tmp_path / "missing")) == PartitionStats(0, 0, 0)  # a writer's new partition
    assert listed_size(str(tmp_path / "missing")) == (0, 0)


def test_a_reader_given_a_folder_that_cannot_be_listed_is_told_so_by_name(tmp_path: Path) -> None:
    missing = str(tmp_path / "raw_clicks" / "dt=2017-10-01" / "hour=3")
    for read in (parquet_files, parquet_rows, lambda location: read_columns(location, ["clicks"])):
        with pytest.raises(LocationUnreadable, match=f"^{re.escape(missing)}: the metastore names this folder"):
            read(missing)


def test_statistics_round_trip_through_partition_parameters() -> None:
    stats = PartitionStats(rows=7, files=2, bytes=1234)
    assert PartitionStats.of({**stats.parameters(), "transient_lastDdlTime": "1"}) == stats
    assert PartitionStats.of({"numFiles": "2", "totalSize": "1234"}) is None  # the metastore's own listing
    assert PartitionStats.of({**stats.parameters(), "numRows": "-1"}) is None  # Hive's "unknown"
    assert PartitionStats.of(None) is None
    assert stats + PartitionStats(1, 1, 10) == PartitionStats(8, 3, 1244)


def test_the_view_trusts_statistics_only_where_a_folder_cannot_have_changed_under_them(tmp_path: Path) -> None:
    folder = partition(tmp_path)
    true = folder_stats(str(folder))
    claimed = PartitionStats(1000, true.files, true.bytes)  # figures that only the metastore holds
    # an aggregate's folder is written whole before the metastore points at it: its figures stand
    assert partition_rows(PartitionEntry(str(folder), claimed), TableKind.AGGREGATE) == 1000
    # a raw folder whose listing agrees with its figures: they stand
    assert partition_rows(PartitionEntry(str(folder), claimed), TableKind.RAW) == 1000
    # a raw folder that gained a file after its figures were recorded: its footers are read
    write_rows(folder / "batch-d-000.parquet", 5)
    assert partition_rows(PartitionEntry(str(folder), claimed), TableKind.RAW) == 12
    # no figures at all (an older version's partition): footers
    assert partition_rows(PartitionEntry(str(folder), None), TableKind.AGGREGATE) == 12
