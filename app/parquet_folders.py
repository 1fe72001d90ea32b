"""Parquet folders read without Spark: a table's or partition's data files, their rows from the
footers, a few columns, and the folder's statistics as the writers record them in the metastore.

The pipeline view, `check_tables`, the benchmarks and the Spark jobs' own bookkeeping (the rows a
write landed, the statistics of a new partition folder) read folders here. A folder's data files
are those whose path inside it has no part starting with `_` or `.` (Spark's `_SUCCESS`, its
`.crc` files, our staging and retired folders), the rule Hive's and Spark's readers follow.

A folder a reader is given (a location the metastore names) that cannot be listed is an error that
names it (`LocationUnreadable`), never an empty table: 0 rows read from a folder that is gone would
look like data that never came. Only `listed_size` and `describes`, which the writers ask about a
partition folder they are about to create, take a missing folder as empty.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable, Collection, Mapping
from typing import Any, TypeVar

from app.metastore import PartitionStats
from app.storage import Entry, Location, LocationUnreadable

__all__ = ["LocationUnreadable", "describes", "folder", "folder_stats", "listed_size", "parquet_files", "parquet_rows"]

T = TypeVar("T")
Item = TypeVar("Item")
K = TypeVar("K")
PARALLEL_READS = 8  # pyarrow reads footers and columns without holding the GIL
FOOTER_READ = 64 * 1024  # the last bytes of a remote file fetched for its footer


def folder(location: str | Location) -> Location:
    """A folder named by the metastore (`file:/...`, `file:///...`, `hdfs://...`) or a writer."""
    return location if isinstance(location, Location) else Location.parse(location)


def _data_files(location: str | Location, must_exist: bool = True) -> list[Entry]:
    """The data files of a folder, in path order, from one listing; `LocationUnreadable` when the
    folder cannot be listed and `must_exist`."""
    return sorted(folder(location).walk_files(must_exist), key=lambda entry: entry.location.path)


def parquet_files(location: str | Location) -> list[Location]:
    """The data files of a table or partition folder, sorted; `LocationUnreadable` when it cannot be listed."""
    return [entry.location for entry in _data_files(location)]


def listed_size(location: str | Location) -> tuple[int, int]:
    """The number of data files of a folder and their bytes, from one listing (no file is opened);
    (0, 0) for a folder that does not exist yet."""
    entries = _data_files(location, must_exist=False)
    return len(entries), sum(entry.size for entry in entries)


def describes(stats: PartitionStats | None, location: str | Location) -> bool:
    """Whether recorded statistics still describe a folder: one listing finds the files and bytes
    they name (a folder that gained or lost a file since they were recorded does not match)."""
    return stats is not None and listed_size(location) == (stats.files, stats.bytes)


def footer_rows(file: Entry) -> int:
    """The rows of one Parquet file, from its footer. Off this machine, the file's last bytes are
    fetched in one request (its size is known from the listing), which holds the footer of every
    file the pipeline writes; a larger footer is read through an opened file."""
    import pyarrow.parquet as pq

    if file.location.is_local:
        return int(pq.ParquetFile(file.location.path).metadata.num_rows)
    tail = file.location.read_from(file.size - FOOTER_READ)
    try:
        return int(pq.ParquetFile(TailOfFile(file.size, tail)).metadata.num_rows)
    except OutsideTail:
        with file.location.open() as handle:
            return int(pq.ParquetFile(handle).metadata.num_rows)


class OutsideTail(OSError):
    """A read before the bytes a `TailOfFile` holds."""


class TailOfFile(io.RawIOBase):
    """A file of `size` bytes of which only the last ones (`tail`) are known: enough for a Parquet reader
    that wants the footer; a read before them raises `OutsideTail`."""

    def __init__(self, size: int, tail: bytes) -> None:
        super().__init__()
        self.size, self.tail, self.start, self.position = size, tail, size - len(tail), 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.size}[whence]
        self.position = base + offset
        return self.position

    def tell(self) -> int:
        return self.position

    def readinto(self, buffer: Any) -> int:
        if self.position < self.start:
            raise OutsideTail(f"byte {self.position} is before the last {len(self.tail)} bytes")
        chunk = self.tail[self.position - self.start : self.position - self.start + len(buffer)]
        buffer[: len(chunk)] = chunk
        self.position += len(chunk)
        return len(chunk)


def folder_stats(location: str | Location, must_exist: bool = False) -> PartitionStats:
    """A folder's rows (from its files' footers), data files and bytes; zeros for a folder a writer
    has not created, `LocationUnreadable` for one that `must_exist`."""
    entries = _data_files(location, must_exist)
    return PartitionStats(
        rows=sum(footer_rows(entry) for entry in entries),
        files=len(entries),
        bytes=sum(entry.size for entry in entries),
    )


def parquet_rows(location: str | Location) -> int:
    """The rows of a table or partition folder, from its footers; `LocationUnreadable` when it cannot be listed."""
    return folder_stats(location, must_exist=True).rows


def read_file_columns(file: Location, columns: list[str] | None = None) -> Any:
    """A pyarrow table of those columns (every column when None) of one Parquet file."""
    import pyarrow.parquet as pq

    if file.is_local:
        return pq.read_table(file.path, columns=columns)
    with file.open() as handle:
        return pq.read_table(handle, columns=columns)


def column_names(file: Location) -> list[str]:
    """The columns one Parquet file holds, from its footer."""
    import pyarrow.parquet as pq

    if file.is_local:
        return list(pq.ParquetFile(file.path).schema_arrow.names)
    with file.open() as handle:
        return list(pq.ParquetFile(handle).schema_arrow.names)


def write_file(table: Any, file: Location) -> None:
    """Write a pyarrow table as one Parquet file (under a temporary name beside it, then renamed:
    readers see the old file or the new one, never half of it)."""
    import pyarrow.parquet as pq

    temporary = file.parent / f".{file.name}.{uuid.uuid4().hex}"
    file.parent.mkdir()
    if temporary.is_local:
        pq.write_table(table, temporary.path)
    else:
        with temporary.open("wb") as handle:
            pq.write_table(table, handle)
    temporary.replace(file)


def read_columns(location: str | Location, columns: list[str]) -> dict[str, list[Any]]:
    import pyarrow as pa

    files = parquet_files(location)
    if not files:
        return {column: [] for column in columns}
    table: pa.Table = pa.concat_tables([read_file_columns(file, columns) for file in files])
    return dict(table.to_pydict())


def in_parallel(function: Callable[[Item], T], items: list[Item], threads: int = PARALLEL_READS) -> list[T]:
    """`function` over many small Parquet folders at once, results in the order of `items`; in the
    calling thread when `threads` is 1 (see `listing_threads`)."""
    from concurrent.futures import ThreadPoolExecutor

    if threads <= 1:
        return [function(item) for item in items]
    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(function, items))


def listing_threads(locations: list[str]) -> int:
    """Threads for listing these folders: one when all are on this machine, where a listing is a
    system call of microseconds and threads only add their hand-over (2,070 partition folders
    listed in 0.06 s in one thread, 0.17 s in eight); else `PARALLEL_READS`, to overlap the
    round trips to HDFS or S3."""
    return 1 if all(Location.parse(location).is_local for location in locations) else PARALLEL_READS


def folders_holding(folders: Mapping[K, str | Location], column: str, values: Collection[int]) -> set[K]:
    """The keys of those folders with a row whose integer `column` is one of `values`. One scan of
    that column over every data file, by pyarrow's dataset reader (its own threads, the footers and
    the one column only): 2,070 hourly partitions in 0.6 s, where a Spark job took 10 s."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    if not values or not folders:
        return set()
    files = {file: key for key, where in folders.items() for file in parquet_files(where)}
    wanted = pa.array(sorted(values), pa.int64())
    found: set[K] = set()
    for store, located in _by_store(list(files)).items():
        filesystem, paths = _arrow_paths(store, located)
        of_path = dict(zip(paths, located, strict=True))
        dataset = ds.dataset(paths, format="parquet", filesystem=filesystem)
        matched = dataset.to_table(columns=["__filename"], filter=pc.field(column).isin(wanted))
        found |= {files[of_path[path]] for path in set(matched.column("__filename").to_pylist())}
    return found


def _by_store(files: list[Location]) -> dict[tuple[str, str], list[Location]]:
    grouped: dict[tuple[str, str], list[Location]] = {}
    for file in files:
        grouped.setdefault((file.scheme, file.authority), []).append(file)
    return grouped


def _arrow_paths(store: tuple[str, str], files: list[Location]) -> tuple[Any, list[str]]:
    """A pyarrow file system reaching one store, and the files' paths on it: the local disk as is,
    S3 through the pyarrow client the locations use already, HDFS through their WebHDFS client."""
    if store[0] == "file":
        return None, [file.path for file in files]
    from pyarrow.fs import FSSpecHandler, PyFileSystem

    client = files[0].fs
    filesystem = client.fs if store[0] == "s3a" else PyFileSystem(FSSpecHandler(client))
    return filesystem, [file.fs_path for file in files]
