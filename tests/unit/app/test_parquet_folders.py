"""Parquet folders read without Spark, and the rows the view takes from a partition's statistics."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from app import parquet_folders
from app.metastore import PartitionEntry, PartitionStats
from app.parquet_folders import (
    PARALLEL_READS,
    LocationUnreadable,
    folder_stats,
    folders_holding,
    in_parallel,
    listed_size,
    listing_threads,
    parquet_files,
    parquet_rows,
    read_columns,
)
from app.pipeline_view import HiveCatalog, partition_rows, read_tables
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


def test_the_view_looks_only_at_folders_whose_figures_it_cannot_take_as_recorded(tmp_path: Path) -> None:
    raw = partition(tmp_path)  # 7 rows in its data files
    recorded = folder_stats(str(raw))
    gone = str(tmp_path / "no-such-folder")  # looked at, it would fail: an aggregate's folder is not
    catalog = HiveCatalog.__new__(HiveCatalog)
    catalog._entries = {
        "raw_clicks": {
            "dt=2017-10-01/hour=3": PartitionEntry(str(raw), PartitionStats(7, recorded.files, recorded.bytes))
        },
        "article_hourly": {
            "dt=2017-10-01/hour=3": PartitionEntry(gone, PartitionStats(40, 1, 10)),
            "dt=2017-10-01/hour=4": PartitionEntry(gone, PartitionStats(2, 1, 10)),
        },
    }
    looked_at: list[str] = []
    listed = parquet_folders.listed_size

    def listing(location: str) -> tuple[int, int]:
        looked_at.append(str(location))
        return listed(location)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(parquet_folders, "listed_size", listing)
        tables = {table.name: table for table in read_tables(catalog)}
    assert (tables["raw_clicks"].rows, tables["article_hourly"].rows) == (7, 42)
    assert tables["article_hourly"].latest_partition == "dt=2017-10-01/hour=4"
    assert looked_at == [str(raw)]


def test_local_folders_are_listed_in_the_calling_thread_remote_ones_side_by_side() -> None:
    caller = threading.get_ident()
    assert in_parallel(lambda item: (item, threading.get_ident()), [3, 1, 2], threads=1) == [
        (3, caller), (1, caller), (2, caller)
    ]  # fmt: skip
    assert in_parallel(lambda item: item * 2, [3, 1, 2]) == [6, 2, 4]
    assert listing_threads(["/tmp/a", "file:///tmp/b"]) == 1
    assert listing_threads(["/tmp/a", "hdfs://127.0.0.1:9000/lake/b"]) == PARALLEL_READS > 1


def test_folders_holding_a_value_are_found_from_one_column_of_their_files(tmp_path: Path) -> None:
    def write(folder: str, name: str, ids: list[int]) -> None:
        (tmp_path / folder).mkdir(exist_ok=True)
        pq.write_table(pa.table({"article_id": ids, "clicks": [1] * len(ids)}), tmp_path / folder / name)

    write("hour=1", "a.parquet", [1, 2])
    write("hour=1", "b.parquet", [3])
    write("hour=2", "a.parquet", [4, 5])
    write("hour=3", "a.parquet", [3, 6])
    (tmp_path / "hour=3" / "_staging").mkdir()
    pq.write_table(pa.table({"article_id": [4]}), tmp_path / "hour=3" / "_staging" / "c.parquet")  # hidden
    (tmp_path / "hour=4").mkdir()  # an empty folder
    folders = {hour: str(tmp_path / f"hour={hour}") for hour in (1, 2, 3, 4)}
    assert folders_holding(folders, "article_id", {3}) == {1, 3}
    assert folders_holding(folders, "article_id", {4, 7}) == {2}
    assert folders_holding(folders, "article_id", set()) == set()
    assert folders_holding({}, "article_id", {3}) == set()
