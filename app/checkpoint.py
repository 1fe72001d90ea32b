"""The streaming job's checkpoint, seen from outside Spark: whose it is, who runs on it, how far it got.

- The identity file (`CHECK_POINT_LOCATION/streaming.query.json`) records which query wrote the
  checkpoint; a job for other topics or another version of the query refuses to run on it.
- The stream lock (`streaming.lock`, `app/locks.py`: a file lock, or an advisory lock in
  PostgreSQL) is held by the one streaming job running on the checkpoint and says which job that
  is. A second job refuses to start; the hourly DAG's drain task waits for a running stream
  instead of starting one.
- The pending-hours file (`CHECK_POINT_LOCATION/streaming.pending-hours.json`) lists the hours
  whose raw rows an available-now drain has landed (and committed) but whose aggregates it has not
  recomputed yet: a drain recomputes every hour it touched once, after its last micro-batch, instead
  of after each one. A job that starts finds the list left by one that died and recomputes those
  hours first; the hourly DAG's drain task starts Spark while the list is not empty.
- The unsettled-partitions file (`CHECK_POINT_LOCATION/streaming.unsettled-partitions.json`)
  lists, per raw table, the partitions the job appended to that may still need their files merged
  (compaction): the job looks at those only, never at a whole table.
- `stream_query_id()` is the id Spark gave the query when the checkpoint was made; the raw tables'
  file names carry it with the batch id, so a replayed batch rewrites its own files.
- `committed_offsets()` reads the Kafka offsets of the last completed micro-batch from Spark's
  checkpoint files, so Airflow tasks and views can tell how far the stream got without Spark.

The checkpoint is a `Location` (a local folder or an `hdfs://` one); its small files are written
under a temporary name and renamed, through the storage layer (`app/storage.py`). With
`PIPELINE_LOCKS=file` the lock is a `flock` on this host (beside a local checkpoint, in the state
folder for one on HDFS), so the drivers must run on one host; with `postgres` (the default under
the CeleryExecutor) any host that reaches Airflow's database may run them.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from app.hours import Hour
from app.locks import LockBusyError, PipelineLock, holder_info, pipeline_lock
from app.schemas import SCHEMA_VERSION
from app.settings import Settings
from app.storage import Location

log = logging.getLogger(__name__)

QUERY_VERSION = 1  # bump when the query changes in a way an old checkpoint cannot follow

Offsets = dict[str, dict[int, int]]  # topic -> partition -> next offset to read


class CheckpointMismatchError(RuntimeError):
    """The checkpoint belongs to another query; continuing would reprocess or skip data."""


class CheckpointBusyError(RuntimeError):
    """Another streaming job runs on the checkpoint."""


def checkpoint_folder(settings: Settings) -> Location:
    return settings.check_point_location / "streaming"


def query_identity(settings: Settings) -> dict[str, Any]:
    return {
        "job": "clickstream-streaming",
        "query_version": QUERY_VERSION,
        "schema_version": SCHEMA_VERSION,
        "topics": sorted([settings.kafka_topic, settings.kafka_metadata_topic]),
        "database": settings.hive_database,
    }


def check_checkpoint(settings: Settings) -> Location:
    """The checkpoint folder, after making sure it was written by this query (or is new)."""
    checkpoint = checkpoint_folder(settings)
    identity_file = settings.check_point_location / "streaming.query.json"
    expected = query_identity(settings)
    if identity_file.exists():
        found = json.loads(identity_file.read_text())
        if found != expected:
            differences = ", ".join(
                f"{key}: checkpoint has {found.get(key)!r}, job has {expected[key]!r}"
                for key in expected
                if found.get(key) != expected[key]
            )
            raise CheckpointMismatchError(
                f"the checkpoint in {checkpoint} was written by another query ({differences}); "
                "set CHECK_POINT_LOCATION to a new folder (the job then starts from KAFKA_STARTING_OFFSETS) "
                "or restore the settings it was written with"
            )
    elif checkpoint.entries():
        raise CheckpointMismatchError(
            f"the checkpoint in {checkpoint} has no record of the query that wrote it ({identity_file} is missing); "
            "set CHECK_POINT_LOCATION to a new folder"
        )
    else:
        identity_file.write_atomically(json.dumps(expected, indent=2, sort_keys=True))
    return checkpoint


def _pending_hours_file(settings: Settings) -> Location:
    return settings.check_point_location / "streaming.pending-hours.json"


def pending_hours(settings: Settings) -> list[Hour]:
    """Hours landed by a drain whose aggregates are not recomputed yet, as (dt, hour), in order."""
    path = _pending_hours_file(settings)
    if not path.exists():
        return []
    return sorted((str(dt), int(hour)) for dt, hour in json.loads(path.read_text()))


def add_pending_hours(settings: Settings, hours: list[Hour]) -> None:
    """Add hours to the list, atomically (before the micro-batch that landed them is committed)."""
    _write_hours(settings, sorted(set(pending_hours(settings)) | set(hours)))


def clear_pending_hours(settings: Settings, done: list[Hour]) -> None:
    """Take recomputed hours off the list (the file goes when it is empty)."""
    left = sorted(set(pending_hours(settings)) - set(done))
    if left:
        _write_hours(settings, left)
    else:
        _pending_hours_file(settings).unlink()


def _write_hours(settings: Settings, hours: list[Hour]) -> None:
    _write_json(_pending_hours_file(settings), hours)


def _write_json(path: Location, content: Any) -> None:
    path.write_atomically(json.dumps(content))  # a reader sees the old content or the new one, never half of it


def _unsettled_file(settings: Settings) -> Location:
    return settings.check_point_location / "streaming.unsettled-partitions.json"


def unsettled_partitions(settings: Settings) -> dict[str, list[str]]:
    """Per raw table, the partitions appended to that may still need their files merged."""
    path = _unsettled_file(settings)
    if not path.exists():
        return {}
    return {str(table): sorted(str(p) for p in names) for table, names in json.loads(path.read_text()).items()}


def add_unsettled_partitions(settings: Settings, appended: dict[str, list[str]]) -> None:
    found = unsettled_partitions(settings)
    merged = {table: sorted(set(found.get(table, [])) | set(appended.get(table, []))) for table in {*found, *appended}}
    _write_json(_unsettled_file(settings), {table: names for table, names in merged.items() if names})


def settle_partitions(settings: Settings, settled: dict[str, list[str]]) -> None:
    found = unsettled_partitions(settings)
    left = {table: sorted(set(names) - set(settled.get(table, []))) for table, names in found.items()}
    _write_json(_unsettled_file(settings), {table: names for table, names in left.items() if names})


def stream_query_id(settings: Settings) -> str:
    """The id of the streaming query of the checkpoint (Spark writes it when the query first starts)."""
    metadata = checkpoint_folder(settings) / "metadata"
    return str(json.loads(metadata.read_text().splitlines()[0])["id"])


def stream_lock(settings: Settings) -> PipelineLock:
    """The lock the one streaming job on the checkpoint holds (`app/locks.py`: a file, or PostgreSQL)."""
    return pipeline_lock(settings, settings.check_point_location, "streaming.lock")


class StreamLock:
    """Held by the streaming job for as long as it runs; released when its process ends, however."""

    def __init__(self, settings: Settings, trigger: str) -> None:
        self.lock = stream_lock(settings)
        self.checkpoint = settings.check_point_location
        self.trigger = trigger

    def acquire(self) -> None:
        try:
            self.lock.acquire(holder_info(trigger=self.trigger), wait=False)
        except LockBusyError as error:
            raise CheckpointBusyError(
                f"another streaming job runs on the checkpoint in {self.checkpoint} "
                f"({json.dumps(error.holder, sort_keys=True)}); "
                "stop it first (the clickstream_streaming run in Airflow), "
                "or give this one its own CHECK_POINT_LOCATION"
            ) from None

    def confirm(self) -> None:
        """`LockLostError` when the lock was lost (its database session ended): stop writing."""
        self.lock.confirm()

    def release(self) -> None:
        self.lock.release()

    def __enter__(self) -> StreamLock:
        self.acquire()
        return self

    def __exit__(self, *_: object) -> None:
        self.release()


def running_stream(settings: Settings) -> dict[str, Any] | None:
    """Who runs on the checkpoint now (pid, host, trigger, started), or None when no job does."""
    return stream_lock(settings).holder()


def committed_offsets(settings: Settings) -> Offsets:
    """Offsets the last completed micro-batch read up to; empty when no batch has completed."""
    checkpoint = checkpoint_folder(settings)
    commits = _batch_ids(checkpoint / "commits")
    if not commits:
        return {}
    lines = (checkpoint / "offsets" / str(max(commits))).read_text().splitlines()
    offsets: Offsets = {}
    for line in lines[2:]:  # a version line, the batch metadata, then one line per source
        source = json.loads(line) if line.strip().startswith("{") else {}
        for topic, partitions in source.items():
            offsets.setdefault(topic, {}).update({int(p): int(o) for p, o in partitions.items()})
    return offsets


def _batch_ids(folder: Location) -> list[int]:
    return [int(entry.name) for entry in folder.entries() if entry.name.isdigit()]


def offsets_behind(target: Offsets, reached: Offsets) -> dict[str, int]:
    """Per topic, how many offsets `reached` lacks to get to `target` (0 when it got there)."""
    return {
        topic: sum(max(0, end - reached.get(topic, {}).get(partition, 0)) for partition, end in partitions.items())
        for topic, partitions in target.items()
    }
