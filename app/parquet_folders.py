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

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from app.metastore import PartitionStats

T = TypeVar("T")
Item = TypeVar("Item")
PARALLEL_READS = 8  # pyarrow reads footers and columns without holding the GIL


def folder(location: str) -> Path:
    return Path(location.removeprefix("file:"))


class LocationUnreadable(RuntimeError):
    """A table's or partition's folder cannot be listed; the message names it and why."""


def _data_entries(top: str, must_exist: bool = False) -> list[os.DirEntry[str]]:
    found: list[os.DirEntry[str]] = []
    try:
        entries = list(os.scandir(top))
    except (FileNotFoundError, NotADirectoryError, PermissionError) as error:
        if must_exist:
            raise LocationUnreadable(
                f"{top}: the metastore names this folder, but it cannot be listed ({error.strerror}); "
                "its table is unreadable, not empty"
            ) from None
        return found  # a folder inside it removed while it was listed (a compaction, a retired version)
    for entry in entries:
        if entry.name.startswith(("_", ".")):
            continue
        if entry.is_dir(follow_symlinks=False):
            found.extend(_data_entries(entry.path))
        elif entry.is_file():
            found.append(entry)
    return found


def _data_files(location: str, must_exist: bool = True) -> list[os.DirEntry[str]]:
    """The data files of a folder, in path order, from one listing; `LocationUnreadable` when the
    folder cannot be listed and `must_exist`."""
    return sorted(_data_entries(str(folder(location)), must_exist), key=lambda entry: Path(entry.path))


def parquet_files(location: str) -> list[Path]:
    """The data files of a table or partition folder, sorted; `LocationUnreadable` when it cannot be listed."""
    return [Path(entry.path) for entry in _data_files(location)]


def listed_size(location: str) -> tuple[int, int]:
    """The number of data files of a folder and their bytes, from one listing (no file is opened);
    (0, 0) for a folder that does not exist yet."""
    entries = _data_files(location, must_exist=False)
    return len(entries), sum(entry.stat().st_size for entry in entries)


def describes(stats: PartitionStats | None, location: str) -> bool:
    """Whether recorded statistics still describe a folder: one listing finds the files and bytes
    they name (a folder that gained or lost a file since they were recorded does not match)."""
    return stats is not None and listed_size(location) == (stats.files, stats.bytes)


def folder_stats(location: str, must_exist: bool = False) -> PartitionStats:
    """A folder's rows (from its files' footers), data files and bytes; zeros for a folder a writer
    has not created, `LocationUnreadable` for one that `must_exist`."""
    import pyarrow.parquet as pq

    entries = _data_files(location, must_exist)
    return PartitionStats(
        rows=sum(pq.ParquetFile(entry.path).metadata.num_rows for entry in entries),
        files=len(entries),
        bytes=sum(entry.stat().st_size for entry in entries),
    )


def parquet_rows(location: str) -> int:
    """The rows of a table or partition folder, from its footers; `LocationUnreadable` when it cannot be listed."""
    return folder_stats(location, must_exist=True).rows


def read_columns(location: str, columns: list[str]) -> dict[str, list[Any]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = parquet_files(location)
    if not files:
        return {column: [] for column in columns}
    table: pa.Table = pa.concat_tables([pq.read_table(path, columns=columns) for path in files])
    return dict(table.to_pydict())


def in_parallel(function: Callable[[Item], T], items: list[Item]) -> list[T]:
    """`function` over many small Parquet folders at once, results in the order of `items`."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=PARALLEL_READS) as pool:
        return list(pool.map(function, items))
