"""Locations by URI: parsing and naming (local paths, file://, hdfs://, refused schemes), and the
file operations on the local store (the HDFS ones run in tests/integration on a real HDFS)."""

from __future__ import annotations

import io
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from app.parquet_folders import OutsideTail, TailOfFile, folder_stats
from app.storage import Location, LocationError, LocationUnreadable, local_lock_file


def test_paths_and_uris_name_the_same_local_folder(tmp_path: Path) -> None:
    assert Location.parse(str(tmp_path)) == Location.parse(f"file://{tmp_path}") == Location.parse(f"file:{tmp_path}")
    assert Location.parse("lake", relative_to=tmp_path) == Location.local(tmp_path / "lake")
    lake = Location.local(tmp_path / "lake")
    assert str(lake) == str(tmp_path / "lake") and lake.uri == f"file://{tmp_path}/lake"
    assert (lake / "raw_clicks" / "dt=2017-10-01").uri.endswith("/lake/raw_clicks/dt=2017-10-01")  # `=` kept


def test_an_hdfs_location_keeps_its_namenode_through_joins() -> None:
    lake = Location.parse("hdfs://nn.example:8020/clickstream/lake/")
    partition = lake / "raw_clicks" / "dt=2017-10-01/hour=3"
    assert str(partition) == "hdfs://nn.example:8020/clickstream/lake/raw_clicks/dt=2017-10-01/hour=3"
    assert partition.is_relative_to(lake) and partition.relative_to(lake) == "raw_clicks/dt=2017-10-01/hour=3"
    assert partition.parent.name == "dt=2017-10-01"
    assert not partition.is_relative_to(Location.parse("hdfs://other:8020/clickstream/lake"))
    assert not Location.parse("hdfs://nn.example:8020/clickstream/lakes").is_relative_to(lake)
    with pytest.raises(LocationError, match="not on this machine"):
        _ = partition.local_path


def test_an_s3_location_names_its_bucket_and_keys() -> None:
    lake = Location.parse("s3a://warehouse-bucket/clickstream/lake/")
    partition = lake / "raw_clicks" / "dt=2017-10-01/hour=3"
    assert (lake.scheme, lake.authority, lake.path) == ("s3a", "warehouse-bucket", "/clickstream/lake")
    assert partition.uri == "s3a://warehouse-bucket/clickstream/lake/raw_clicks/dt=2017-10-01/hour=3"
    assert partition.fs_path == "warehouse-bucket/clickstream/lake/raw_clicks/dt=2017-10-01/hour=3"  # pyarrow's key
    assert partition.is_relative_to(lake)
    assert not partition.is_relative_to(Location.parse("s3a://other-bucket/clickstream/lake"))
    assert Location.parse("hdfs://nn:8020/lake").fs_path == "/lake"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("s3://bucket/lake", "is a s3:// location"),
        ("gs://bucket/lake", "s3a://bucket/path"),
        ("hdfs:///lake", "names no NameNode"),
        ("s3a:///lake", "names no bucket"),
        ("file://lake", "a file:// URI names an absolute path"),
    ],
)
def test_a_location_this_version_cannot_reach_is_refused(text: str, message: str) -> None:
    with pytest.raises(LocationError, match=message):
        Location.parse(text)


def test_local_files_are_written_renamed_listed_and_removed(tmp_path: Path) -> None:
    root = Location.local(tmp_path / "table")
    (root / "dt=1" / "a.parquet").write_text("a")
    (root / "dt=1" / "_staging" / "b.parquet").write_text("b")
    (root / "dt=1" / ".hidden").write_text("c")
    assert [entry.location.name for entry in root.walk_files()] == ["a.parquet"]
    assert [entry.name for entry in (root / "dt=1").entries()] == [".hidden", "_staging", "a.parquet"]

    marker = root / "_retired" / "marker"
    marker.write_atomically("first")
    marker.write_atomically("second")
    assert marker.read_text() == "second" and [e.name for e in marker.parent.entries()] == ["marker"]

    (root / "dt=1" / "a.parquet").replace(root / "dt=2" / "a.parquet")
    assert not (root / "dt=1" / "a.parquet").exists() and (root / "dt=2" / "a.parquet").read_text() == "a"
    (root / "dt=2" / "a.parquet").link_or_copy(root / "dt=3" / "a.parquet")
    assert (tmp_path / "table" / "dt=3" / "a.parquet").stat().st_nlink == 2

    assert not root.remove_if_empty()
    (root / "dt=1").remove_tree()
    (root / "dt=1").remove_tree()  # nothing left to remove
    assert not (root / "dt=1").exists() and (root / "missing").entries() == []
    with pytest.raises(LocationUnreadable, match="cannot be listed"):
        (root / "missing").entries(must_exist=True)
    with pytest.raises(LocationUnreadable, match="unreadable, not empty"):
        folder_stats(root / "missing", must_exist=True)


def test_writers_of_a_remote_folder_lock_in_the_state_folder(tmp_path: Path) -> None:
    local = Location.local(tmp_path / "checkpoints")
    assert local_lock_file(local, "streaming.lock", tmp_path / "state") == tmp_path / "checkpoints" / "streaming.lock"
    remote = local_lock_file(Location.parse("hdfs://nn:8020/checkpoints"), "streaming.lock", tmp_path / "state")
    assert remote.parent == tmp_path / "state" / "locks" and remote.name.startswith("streaming.lock-")
    other = local_lock_file(Location.parse("hdfs://nn:8020/other"), "streaming.lock", tmp_path / "state")
    assert other != remote


def test_a_footer_is_read_from_the_last_bytes_of_a_file() -> None:
    buffer = io.BytesIO()
    pq.write_table(pa.table({"user_id": list(range(50_000))}), buffer)
    data = buffer.getvalue()
    assert pq.ParquetFile(TailOfFile(len(data), data[-65536:])).metadata.num_rows == 50_000
    with pytest.raises(OutsideTail):
        pq.ParquetFile(TailOfFile(len(data), data[-16:]))


def test_a_local_listing_names_what_fsspec_names_links_followed(tmp_path: Path) -> None:
    folder = Location.local(tmp_path / "dt=1")
    (folder / "b.parquet").write_text("bb")
    (folder / "_staging" / "c.parquet").write_text("ccc")
    (tmp_path / "elsewhere.parquet").write_text("dddd")
    (tmp_path / "dt=1" / "a.parquet").symlink_to(tmp_path / "elsewhere.parquet")
    listed = [(entry.name, entry.is_dir, entry.size) for entry in folder.entries()]
    by_fsspec = sorted(
        (str(item["name"]).rsplit("/", 1)[-1], item["type"] == "directory", int(item["size"]))
        for item in folder.fs.ls(folder.fs_path, detail=True)
    )
    assert listed == by_fsspec
    assert listed[0] == ("_staging", True, listed[0][2]) and listed[1:] == [
        ("a.parquet", False, 4),
        ("b.parquet", False, 2),
    ]
    assert [(e.name, e.size) for e in (folder / "b.parquet").entries()] == [("b.parquet", 2)]  # a file lists itself
    assert (folder / "missing").entries() == []
    with pytest.raises(LocationUnreadable, match="missing"):
        (folder / "missing").entries(must_exist=True)
