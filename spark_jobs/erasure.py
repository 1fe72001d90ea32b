"""Forgetting users: their clicks removed from `raw_clicks`, everything built from them rebuilt, and
the request recorded, so that nothing brings the clicks back.

`forget_users()` carries out one erasure request, in this order, each step safe to run again:

1. Under the stream's lock (the streaming job appends to raw partitions; an append beside a
   rewrite would land in a folder the rewrite retires), it finds the raw partitions that hold the
   users' clicks. A user with no clicks who was never forgotten is refused before anything is
   written (a mistyped id must not pass for an erasure).
2. It adds one row per user to `erasures`: the keyed hash of the user (`app/erasure.py`), never the
   id. From then on `Pipeline` refuses the user's clicks where they enter `raw_clicks` (a replayed
   file, a backfill, a re-drain of the topic), keeping only their coordinates in `erased_clicks`.
3. It records the coordinates (file, version, line, Kafka partition and offset; no user) of the
   clicks it removes in `erased_clicks`, then rewrites each raw partition that held them, whole,
   without them. `hour_reconciliation` counts the erased clicks of an hour (distinct Kafka
   coordinates: a rerun after a crash between the two writes counts nothing twice), so an hour
   with an erasure still balances.
4. It recomputes the aggregates of the hours it rewrote (an hour left without clicks gets empty
   partitions), drops the users' sessions from the `sessions` partitions of the hours those
   sessions started in (a session is one user's: the others stay as they are), and rebuilds the
   days of those hours that were built before, so every table equals a computation from the
   remaining raw rows.
5. It records in the user's `erasures` row when it was done, the hours and days it rewrote and
   the rows it removed.

Cost: the raw partitions come from the `user_hours` index, which `Pipeline` appends to with every
micro-batch: one bucket of it is read per user (a sixteenth of the index, whose rows are one per
user and hour, not per click), not the `raw_clicks` table. A database older than the index has it
built from every raw click by its first erasure, once. The rest grows with the hours the users
touched. `docs/design/erasure.md` has the figures.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from app.checkpoint import stream_lock
from app.erasure import ErasureRequestError, erasure_key, user_hash
from app.hours import DAY_LAYOUT, Hour, day_partition, hour_key, hour_partition
from app.locks import LockBusyError, PipelineLock, holder_info
from app.table_catalog import USER_BUCKETS
from spark_jobs import transforms as T
from spark_jobs.pipeline import Pipeline
from spark_jobs.tables import BatchTag

log = logging.getLogger(__name__)

LOCK_WAIT_SECONDS = 900.0  # an hourly drain holds the stream's lock for minutes; a running stream, for ever


@dataclass
class ErasureReport:
    """What one request changed."""

    users: list[int]
    rows_removed: dict[int, int] = field(default_factory=dict)  # raw clicks removed, per user
    user_hours: dict[int, list[Hour]] = field(default_factory=dict)  # the hours each user had clicks in
    hours: list[Hour] = field(default_factory=list)  # raw partitions rewritten
    days: list[str] = field(default_factory=list)  # daily partitions rebuilt
    already_forgotten: list[int] = field(default_factory=list)  # named before, with no clicks left
    lookup_seconds: float = 0.0  # finding the users' hours (in the index)
    seconds: float = 0.0  # the whole request, once the lock was taken

    def sentence(self) -> str:
        again = f"; already forgotten before: {self.already_forgotten}" if self.already_forgotten else ""
        return (
            f"forgot {len(self.users)} user(s): {sum(self.rows_removed.values())} raw click(s) removed from "
            f"{len(self.hours)} hour(s) {[hour_key(h) for h in self.hours]} (raw rewritten, aggregates "
            f"recomputed), {len(self.days)} day(s) {self.days} rebuilt or left to clickstream_daily{again}; "
            f"hours found in {self.lookup_seconds:.1f} s, all done in {self.seconds:.1f} s"
        )


def forget_users(
    pipeline: Pipeline, users: list[int], build_days: bool = True, lock_wait_seconds: float = LOCK_WAIT_SECONDS
) -> ErasureReport:
    """Carry out one erasure request (see the module's docstring); `ErasureRequestError` for a user
    with no clicks who was never forgotten, before anything changes. Without `build_days`, the days
    to rebuild are only named (the DAG announces them to `clickstream_daily`)."""
    lock = stream_lock(pipeline.settings)
    _acquire(lock, pipeline, lock_wait_seconds)
    try:
        return _forget(pipeline, users, build_days)
    finally:
        lock.release()


def _acquire(lock: PipelineLock, pipeline: Pipeline, wait_seconds: float) -> None:
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            lock.acquire(holder_info(job="forget_users"), wait=False)
            return
        except LockBusyError as error:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"the streaming job's lock on {pipeline.settings.check_point_location} stayed taken for "
                    f"{wait_seconds:.0f} s ({error.holder}): an erasure rewrites raw partitions the stream appends "
                    "to; stop a long-running stream (the clickstream_streaming run) and ask again"
                ) from None
            time.sleep(5)


def _forget(pipeline: Pipeline, users: list[int], build_days: bool) -> ErasureReport:
    started = time.monotonic()
    store, settings = pipeline.store, pipeline.settings
    key = erasure_key(settings)
    report = ErasureReport(users=users)
    forgotten_before = set(pipeline.forgotten_users())
    wanted = F.col("user_id").isin(users)
    if not store.indexes_every_click():  # a database older than the index: built once, from every click
        building = time.monotonic()
        store.replace_partitions("user_hours", T.user_hours(store.read_partitions("raw_clicks")))
        store.mark_indexed()
        log.info("built the user_hours index from every raw click in %.1f s (once)", time.monotonic() - building)
    buckets = sorted({f"bucket={user % USER_BUCKETS}" for user in users})
    index = store.read_partitions("user_hours", buckets)
    found = index.where(wanted).select("user_id", "dt", "hour", "start_dt", "start_hour").distinct().collect()
    report.lookup_seconds = time.monotonic() - started
    with_clicks = {int(row["user_id"]) for row in found}
    unknown = [user for user in users if user not in with_clicks and user_hash(key, user) not in forgotten_before]
    if unknown:
        raise ErasureRequestError(
            f"no clicks of user(s) {unknown} in {settings.hive_database}.raw_clicks, and none was forgotten before: "
            "nothing was changed (check the id)"
        )
    report.already_forgotten = [user for user in users if user not in with_clicks]
    requested_at = datetime.now(UTC)
    ids = {user: str(uuid.uuid4()) for user in users}
    _record(pipeline, ids, key, requested_at, report, done=False)  # the suppression list first

    hours = sorted({(str(row["dt"]), int(row["hour"])) for row in found})
    for row in found:
        report.user_hours.setdefault(int(row["user_id"]), []).append((str(row["dt"]), int(row["hour"])))
    report.user_hours = {user: sorted(set(hours_of)) for user, hours_of in report.user_hours.items()}
    starts = {(str(row["start_dt"]), int(row["start_hour"])) for row in found}
    if hours:
        # the index may name an hour no longer held (it never misses one): only those that exist
        names = sorted(store.metastore.partition_locations("raw_clicks", [hour_partition(hour) for hour in hours]))
        rows = store.read_partitions("raw_clicks", names)
        removed = rows.where(wanted).persist()
        try:
            counted = removed.groupBy("user_id").count().collect()  # fills the cache
            report.rows_removed = {int(row["user_id"]): int(row["count"]) for row in counted}
            store.append("erased_clicks", T.erased_clicks(removed), BatchTag(str(uuid.uuid4()), 0))
            store.rewrite_partitions("raw_clicks", names, rows.where(~wanted))
        finally:
            removed.unpersist()
    report.hours = hours
    if hours:
        pipeline.recompute_hours(hours)
        # a session row names its user: those of the users' sessions go, the other sessions of those
        # hours stay as they are (a session is one user's; rebuilding them would read their later hours)
        start_names = [hour_partition(hour) for hour in sorted(starts)]
        sessions = store.read_partitions("sessions", start_names)
        held = sorted(store.metastore.partition_locations("sessions", start_names))
        store.rewrite_partitions("sessions", held, sessions.where(~wanted))
        # the index names them too: their buckets are rewritten without them, last (until then a
        # rerun after a crash still finds their hours)
        indexed = sorted(store.metastore.partition_locations("user_hours", buckets))
        store.rewrite_partitions("user_hours", indexed, index.where(~wanted))
    built = set(store.metastore.partition_names("day_summary"))
    days = sorted({day for day, _ in hours if day_partition(day) in built})
    report.days = pipeline.build_days(days) if days and build_days else days
    report.seconds = time.monotonic() - started
    _record(pipeline, ids, key, requested_at, report, done=True)
    log.info("%s", report.sentence())
    return report


def _record(
    pipeline: Pipeline, ids: dict[int, str], key: str, requested_at: datetime, report: ErasureReport, done: bool
) -> None:
    """Write the request's rows into its day's `erasures` partition (the day's other rows kept)."""
    store = pipeline.store
    day = requested_at.strftime(DAY_LAYOUT)
    spark = store.spark
    schema = store.tables["erasures"].schema
    now = datetime.now(UTC) if done else None
    mine = set(ids.values())
    rows = [
        (
            erasure_id,
            user_hash(key, user),
            requested_at,
            now,
            ",".join(hour_key(hour) for hour in report.user_hours.get(user, [])),
            ",".join(sorted({day for day, _ in report.user_hours.get(user, [])} & set(report.days))),
            report.rows_removed.get(user, 0) if done else 0,
            day,
        )
        for user, erasure_id in ids.items()
    ]
    current: DataFrame = store.read_partitions("erasures", [day_partition(day)])
    kept = current.where(~F.col("erasure_id").isin(sorted(mine)))
    store.replace_partitions("erasures", kept.unionByName(spark.createDataFrame(rows, schema)))
