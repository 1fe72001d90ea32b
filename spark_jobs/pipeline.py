"""What both Spark jobs do with data: land a batch of Kafka records, and recompute hours exactly.

`land_batch()` is the streaming job's micro-batch: it parses both topics' records, sets aside
what does not parse (the quarantine table), appends the good records to the raw tables (new files
named after the batch, so a replayed batch adds nothing; the clicks of users an erasure request
named go to `erased_clicks` instead, without their user), upserts the articles that arrived into
`articles`, and recomputes every hour the batch touched, including the hours whose aggregates hold
clicks of an article that just changed (found in `article_hourly`, not in the raw clicks). Then it
settles the raw partitions it appended to (their files merged when there are too many).

`recompute_hours()` rebuilds the aggregate partitions of the given hours from the raw clicks and
the current articles; the batch job calls it for a range of hours. Both go through `TableStore`,
so every partition is replaced whole and atomically.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from app.checkpoint import (
    add_pending_hours,
    add_unsettled_partitions,
    clear_pending_hours,
    pending_hours,
    settle_partitions,
    stream_query_id,
    unsettled_partitions,
)
from app.erasure import erasure_key
from app.event_time import EventTimeRules
from app.hours import DAY_LAYOUT, Hour, hour_partition, hour_start, partition_hour, session_window
from app.locks import LockLostError
from app.metastore import partition_values
from app.parquet_folders import folders_holding
from app.schemas import ARTICLES, CLICKS
from app.settings import Settings
from app.table_catalog import Source, TableKind, daily_tables, tables_of_kind
from spark_jobs import transforms as T
from spark_jobs.tables import FEW_ROWS, BatchTag, TableStore

log = logging.getLogger(__name__)

METASTORE_WAIT_SECONDS = 120.0  # how long a micro-batch waits for a metastore that went away
FILES_PER_LEVEL = 8  # a raw partition still filling has its files merged 8 at a time (see TableStore.compact)
CLOSED_MAX_FILES = 4  # a closed raw partition with more files is merged into one
CLOSED_AFTER = timedelta(hours=2)  # an hour of clicks is closed once clicks this much later have landed


def hours_filter(hours: Iterable[Hour], day: Column | None = None, hour_of_day: Column | None = None) -> Column:
    """Rows whose (day, hour) is one of `hours`; by default the partition columns. The jobs use it on
    the hour a session started in; they name the partitions they read by folder instead.

    On a table read through the metastore (Spark SQL), the metastore is asked only for the days
    (`dt IN (...)`, one short clause) and Spark picks the hours from those partitions: an OR of one
    (dt, hour) term per hour went to the metastore whole, and with a few hundred hours (a drain
    after a backlog: the 72 files of the Globo data set hold clicks of 207 hours) its Derby refused
    the query as too complex and its fallback refuses integer partition keys."""
    day = F.col("dt") if day is None else day
    hour_of_day = F.col("hour") if hour_of_day is None else hour_of_day
    wanted = sorted(set(hours))
    if not wanted:
        return F.lit(False)
    days = sorted({dt for dt, _ in wanted})
    pairs = [f"{dt}/{hour}" for dt, hour in wanted]
    return day.isin(days) & F.concat_ws("/", day, hour_of_day.cast("string")).isin(pairs)


def _hours(rows: DataFrame) -> list[Hour]:
    return sorted({(row["dt"], int(row["hour"])) for row in rows.select("dt", "hour").distinct().collect()})


def _good_and_bad(parsed: DataFrame) -> tuple[dict[str, int], int]:
    """How many records of a parsed micro-batch are good, by topic, and how many are not."""
    counts = parsed.groupBy("kafka_topic", F.col("parse_error").isNull().alias("good")).count().collect()
    good = {row["kafka_topic"]: int(row["count"]) for row in counts if row["good"]}
    return good, sum(int(row["count"]) for row in counts if not row["good"])


def root_cause(error: BaseException) -> str:
    """The innermost cause of a Python or Java (Py4J) error, on one line."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    causes = [line.removeprefix("Caused by: ") for line in lines if line.startswith("Caused by: ")]
    return (causes[-1] if causes else lines[0] if lines else type(error).__name__)[:1000]


@dataclass
class BatchResult:
    clicks: int = 0
    articles: int = 0
    quarantined: int = 0
    hours: int = 0


class Pipeline:
    """Lands micro-batches and keeps the aggregates exact.

    With `defer_recompute` (an available-now drain) a micro-batch lands raw rows only and adds the
    hours it touched to the checkpoint's pending hours; `recompute_pending()` recomputes them once at
    the end. A drain of a backlog touches most hours in every micro-batch, so recomputing after each
    one did the same work several times. A long-running stream recomputes after each micro-batch,
    so its aggregates follow it.

    After each micro-batch the files of the raw partitions it appended to are merged level by level
    (eight files of a level into one of the next). A closed partition (for clicks: clicks two hours
    later have landed; for the tables by arrival day: the day is over) with more than
    `CLOSED_MAX_FILES` files (micro-batches and hourly runs each add one) is merged into one file at
    the end of a drain, and by a long-running stream every `RAW_COMPACTION_INTERVAL_SECONDS`: straggling
    clicks reach old hours in most micro-batches, and merging those hours each time would rewrite
    them each time."""

    def __init__(self, store: TableStore, settings: Settings, defer_recompute: bool = False) -> None:
        self.store = store
        self.settings = settings
        self.defer_recompute = defer_recompute
        self.failure: str | None = None  # why the last micro-batch failed, in words, for the job's exit
        self.latest_click_hour: datetime | None = None  # the latest hour of clicks this job landed
        self.last_final_merge = time.monotonic()
        self.closed_max_files = CLOSED_MAX_FILES
        self.confirm_lock: Callable[[], None] | None = None  # raises when the job lost the checkpoint's lock
        self._erasures_read: tuple[str, ...] = ()  # the erasures partitions `_forgotten` was read from
        self._forgotten: list[str] = []

    def process_batch(self, records: DataFrame, batch_id: int) -> None:
        """`foreachBatch` callback of the streaming query. A batch that fails is not committed:
        the query stops, and the next start runs the same offsets again. A batch that failed
        because the metastore was away (a restart) runs again once it answers, within
        `METASTORE_WAIT_SECONDS`; landing a batch twice gives the same tables. A job that lost the
        checkpoint's lock (its database session ended) writes nothing more and stops."""
        if self.confirm_lock is not None:
            try:
                self.confirm_lock()
            except LockLostError as error:
                self.failure = f"micro-batch {batch_id} was not written: {error}; another job may hold it now"
                log.error("%s", self.failure)
                raise
        for attempt in (1, 2):
            try:
                self.land_batch(records, BatchTag(stream_query_id(self.settings), batch_id))
                return
            except Exception as error:
                away = self.store.unreachable_metastore()
                if attempt == 1 and away and self.store.wait_for_metastore(METASTORE_WAIT_SECONDS):
                    log.warning(
                        "micro-batch %s failed while %s; it answers again: running the batch again", batch_id, away[0]
                    )
                    continue
                found = [*self.store.unwritable_folders(), *away]
                self.failure = (
                    f"micro-batch {batch_id} was not written, so the checkpoint stays before it and a restart "
                    f"runs it again. Cause: {root_cause(error)}" + "".join(f"; {problem}" for problem in found)
                )
                log.error("%s", self.failure)
                raise

    def land_batch(self, records: DataFrame, batch: BatchTag) -> BatchResult:
        """Land one micro-batch of Kafka records (both topics) and recompute what it touched."""
        result = BatchResult()
        # each record is read from Kafka once and its JSON parsed once, whatever its topic; the parsed
        # rows are cached for the quarantine, the raw tables and the articles
        topics = {self.settings.kafka_topic: CLICKS, self.settings.kafka_metadata_topic: ARTICLES}
        parsed = T.parse_records(records, topics, EventTimeRules.from_settings(self.settings)).persist()
        clicks_parsed = parsed.where(F.col("kafka_topic") == self.settings.kafka_topic)
        articles_parsed = parsed.where(F.col("kafka_topic") == self.settings.kafka_metadata_topic)
        try:
            # one pass fills the cache and says which tables get rows: a table without any is not written
            good, bad = _good_and_bad(parsed)
            good_articles = good.get(self.settings.kafka_metadata_topic, 0)
            good_clicks = good.get(self.settings.kafka_topic, 0)
            quarantined = self.store.append("quarantine", T.quarantined(parsed), batch, bad) if bad else {}
            articles = (
                self.store.append("raw_articles", T.raw_articles(articles_parsed), batch, good_articles)
                if good_articles
                else {}
            )
            clicks, indexed = (
                self._append_clicks(T.raw_clicks(clicks_parsed), batch, good_clicks) if good_clicks else ({}, {})
            )
            add_unsettled_partitions(
                self.settings,
                {
                    "quarantine": [*quarantined],
                    "raw_articles": [*articles],
                    "raw_clicks": [*clicks],
                    "user_hours": [*indexed],
                },
            )
            result.quarantined, result.articles, result.clicks = (
                sum(quarantined.values()), sum(articles.values()), sum(clicks.values())
            )  # fmt: skip
            if result.quarantined:
                log.warning(
                    "%s record(s) quarantined (see table %s.quarantine)",
                    result.quarantined,
                    self.settings.hive_database,
                )
            touched = sorted(partition_hour(name) for name in clicks)
            self._note_click_hours(touched)
            if articles:
                # the hours whose aggregates read a changed article are written down before the
                # articles change: a batch that dies after the change still recomputes them
                touched = sorted({*touched, *self._upsert_articles(T.raw_articles(articles_parsed), touched)})
            result.hours = len(touched)
            if self.defer_recompute:
                add_pending_hours(self.settings, touched)  # before Spark commits the micro-batch
            else:
                self.recompute_hours(touched)
                clear_pending_hours(self.settings, touched)
            since_final_merge = time.monotonic() - self.last_final_merge
            final = not self.defer_recompute and since_final_merge >= self.settings.raw_compaction_interval_seconds
            self.settle(uncommitted=batch, final=final)
        finally:
            parsed.unpersist()
        log.info(
            "batch %s: %s clicks, %s articles, %s quarantined, %s hour(s) %s",
            batch.batch_id,
            result.clicks,
            result.articles,
            result.quarantined,
            result.hours,
            "to recompute after the drain" if self.defer_recompute else "recomputed",
        )
        return result

    def _append_clicks(self, raw: DataFrame, batch: BatchTag, count: int) -> tuple[dict[str, int], dict[str, int]]:
        """Append a micro-batch's clicks to `raw_clicks`, less those of forgotten users (the
        `erasures` table), which are kept in `erased_clicks` without their user, and their users'
        hours to the `user_hours` index; returns the rows appended to `raw_clicks` and to
        `user_hours` per partition. A replay of the batch adds nothing to any of them."""
        forgotten = self.forgotten_users()
        if forgotten:
            raw, refused = T.split_forgotten(raw, erasure_key(self.settings), forgotten)
            erased = self.store.append("erased_clicks", T.erased_clicks(refused), batch, count)
            if erased:
                log.warning(
                    "%s click(s) of forgotten users refused (counted in %s.erased_clicks)",
                    sum(erased.values()), self.settings.hive_database,
                )  # fmt: skip
        # the index first: a crash between the two leaves it naming an hour without the clicks (an
        # erasure finds nothing there), never the other way round (an erasure would miss them)
        # a small batch in one partition: its distinct rows then need no shuffle (one Spark stage)
        indexed = self.store.append(
            "user_hours", T.user_hours(raw.coalesce(1) if count <= FEW_ROWS else raw), batch, count
        )
        return self.store.append("raw_clicks", raw, batch, count), indexed  # count: at most this many

    def forgotten_users(self) -> list[str]:
        """The keyed hashes of every user an erasure request named (the `erasures` table), read
        again only when the table changed: one metastore call per micro-batch when it did not."""
        locations = tuple(sorted(self.store.metastore.partition_locations("erasures").values()))
        if locations != self._erasures_read:
            rows = self.store.read_partitions("erasures").select("user_hash").distinct().collect()
            self._forgotten = sorted({str(row["user_hash"]) for row in rows})
            self._erasures_read = locations
        return self._forgotten

    def _upsert_articles(self, incoming_records: DataFrame, landed_hours: list[Hour]) -> list[Hour]:
        """Upsert the batch's articles into the buckets of `articles` they fall in; returns the hours
        to recompute for them: those whose aggregates hold a click of an article that is new or
        whose category, publisher or length changed (`article_hourly` knows them: no raw clicks are
        read). Those hours are added to the pending hours before the articles change."""
        incoming = T.latest_articles(incoming_records).persist()
        try:
            return self._upsert(incoming, landed_hours)
        finally:
            incoming.unpersist()

    def _upsert(self, incoming: DataFrame, landed_hours: list[Hour]) -> list[Hour]:
        buckets = sorted({int(row["bucket"]) for row in incoming.select("bucket").collect()})  # fills the cache
        current = self.store.read_partitions("articles", [f"bucket={bucket}" for bucket in buckets])
        changed = T.changed_articles(incoming, current)
        known = {hour_partition(hour) for hour in [*pending_hours(self.settings), *landed_hours]}  # recomputed anyway
        held = {
            name: folder
            for name, folder in self.store.metastore.partition_locations("article_hourly").items()
            if name not in known
        }
        ids = {int(row["article_id"]) for row in changed.collect()} if held else set()
        # read on the driver, one column of every held hour: a Spark job over them cost a second
        # per 200 hours (10 s of a 19 s micro-batch at ten times the shared data set)
        hours = sorted(partition_hour(name) for name in folders_holding(held, "article_id", ids))
        add_pending_hours(self.settings, hours)
        self.store.replace_partitions("articles", T.upserted(current, incoming))
        return hours

    def _note_click_hours(self, hours: list[Hour]) -> None:
        if hours:
            latest = max(hour_start(hour) for hour in hours)
            self.latest_click_hour = max(latest, self.latest_click_hour or latest)

    def closed(self, table: str, partition: str) -> bool:
        """Whether a raw partition is expected to take no more rows in the normal course."""
        values = partition_values(partition)
        if "dt" not in values:  # an index bucket: appended to for ever, merged level by level only
            return False
        if "hour" in values:
            start = hour_start(partition_hour(partition))
            return self.latest_click_hour is not None and start + CLOSED_AFTER <= self.latest_click_hour
        day_end = datetime.strptime(values["dt"], DAY_LAYOUT).replace(tzinfo=UTC) + timedelta(days=1)
        return day_end + timedelta(hours=1) <= datetime.now(UTC)

    def settle(self, uncommitted: BatchTag | None = None, final: bool = True) -> int:
        """Merge the files of the raw partitions this checkpoint appended to that have too many (see
        `TableStore.compact`; `final`: closed ones into one file); a partition closed with one file
        is settled for good. Then delete the folders partitions stopped pointing at past the grace
        period. Returns how many partitions were settled."""
        settled: dict[str, list[str]] = {}
        for table, partitions in unsettled_partitions(self.settings).items():
            closed = partial(self.closed, table)
            after = self.store.compact(
                table, partitions, closed, FILES_PER_LEVEL, uncommitted, final, self.closed_max_files
            )
            settled[table] = [p for p in partitions if after.get(p, 0) <= self.closed_max_files and closed(p)]
        settle_partitions(self.settings, settled)
        if final:
            self.last_final_merge = time.monotonic()
        self.store.remove_retired()
        return sum(len(names) for names in settled.values())

    def recompute_pending(self) -> int:
        """Recompute the hours landed but not recomputed yet (by this drain, or one that died)."""
        hours = pending_hours(self.settings)
        if hours:
            started = time.monotonic()
            log.info("recomputing %s hour(s) landed by the drain", len(hours))
            self.recompute_hours(hours)
            clear_pending_hours(self.settings, hours)
            self.store.remove_retired()
            log.info("recomputed %s hour(s) landed by the drain in %.1f s", len(hours), time.monotonic() - started)
        return len(hours)

    def recompute_hours(self, hours: Iterable[Hour], attempts: int = 5) -> int:
        """Rebuild every aggregate partition of these click hours (and their sessions) from raw data.

        Another application may land new raw data for the same hours meanwhile (the streaming job
        beside a backfill). After swapping its results in, this checks that the raw partitions and
        the articles it read are still the current ones; if not, its results may be older than the
        other application's, so it computes those hours again.
        """
        pending = sorted(set(hours))
        for _ in range(attempts):
            if not pending:
                return 0
            before = self._inputs(pending)
            self._recompute(pending)
            after = self._inputs(pending)
            changed = sorted(hour for hour in pending if before[hour] != after[hour])
            if not changed:
                return len(pending)
            log.info("raw data of %s hour(s) changed while recomputing them; again: %s", len(changed), changed)
            pending = changed
        raise RuntimeError(f"the raw data of hours {pending} kept changing over {attempts} recomputations")

    def build_days(self, days: Iterable[str], attempts: int = 5) -> list[str]:
        """Rebuild the daily tables of these UTC days (`2017-10-01`) from the raw clicks of their 24
        hours and the current articles, each day's partitions replaced whole; returns the days that
        had clicks. Like `recompute_hours`, it builds a day again when its raw data or the articles
        changed while it was built (the stream writing beside it)."""
        pending = sorted(set(days))
        built: set[str] = set()
        for _ in range(attempts):
            if not pending:
                return sorted(built)
            hours = [(day, hour) for day in pending for hour in range(24)]
            before = self._inputs(hours)
            raw = self.store.read_partitions("raw_clicks", [hour_partition(hour) for hour in hours])
            enriched = T.enrich_clicks(T.click_facts(raw), self.store.read_partitions("articles")).persist()
            try:
                for table in daily_tables():
                    assert table.transform is not None
                    written = self.store.replace_partitions(table.name, T.TABLE_TRANSFORMS[table.transform](enriched))
                    built.update(partition_values(name)["dt"] for name in written)
                    self._empty_the_rest(table.name, {f"dt={day}" for day in pending}, written)
            finally:
                enriched.unpersist()
            after = self._inputs(hours)
            pending = sorted({day for day, hour in hours if before[(day, hour)] != after[(day, hour)]})
            if pending:
                log.info("raw data of %s day(s) changed while building them; again: %s", len(pending), pending)
        raise RuntimeError(f"the raw data of days {pending} kept changing over {attempts} builds")

    def _empty_the_rest(self, table: str, partitions: set[str], written: list[str]) -> None:
        """Empty those partitions a rebuild wrote nothing into: an hour or a day whose clicks were all
        erased (raw rows otherwise only grow) keeps no rows built from them. One metastore call."""
        current = self.store.metastore.partitions(table, sorted(partitions))
        stale = sorted(
            name
            for name, entry in current.items()
            if name not in written and (entry.stats is None or entry.stats.rows != 0)  # not emptied already
        )
        if stale:
            log.info("%s: %s partition(s) with no clicks left emptied: %s", table, len(stale), stale[:5])
            self.store.empty_partitions(table, stale)

    def _inputs(self, hours: list[Hour]) -> dict[Hour, tuple[object, ...]]:
        """What an hour's aggregates are computed from: its raw partition's files and the articles'
        buckets (an append adds a file; a compaction or an upsert moves a folder)."""
        raw = self.store.partition_files("raw_clicks", [hour_partition(hour) for hour in hours])
        articles = tuple(sorted(self.store.metastore.partition_locations("articles").values()))
        return {hour: (tuple(raw.get(hour_partition(hour), [])), articles) for hour in hours}

    def _recompute(self, hours: list[Hour]) -> None:
        # the partitions are named to Spark by their folders (the metastore's, through thrift): no
        # query goes through Spark's Hive client, whose start costs a job about 1.5 s
        names = {hour_partition(hour) for hour in hours}
        articles = self.store.read_partitions("articles")
        # read once for every aggregate, without the Kafka coordinates none of them reads
        enriched = T.enrich_clicks(T.click_facts(self.store.read_partitions("raw_clicks", sorted(names))), articles)
        enriched = enriched.persist()
        try:
            for table in tables_of_kind(TableKind.AGGREGATE):
                if table.source is Source.ENRICHED_CLICKS and table.transform is not None:
                    written = self.store.replace_partitions(table.name, T.TABLE_TRANSFORMS[table.transform](enriched))
                    self._empty_the_rest(table.name, names, written)
            session_hours = _hours(T.session_start_hours(enriched))
            if session_hours:
                # a session belongs to the hour it started in, and its clicks may lie in later hours:
                # those of the hours recomputed are at hand, the others are read: only the hours a
                # session may reach (CLICKSTREAM_MAX_SESSION_SECONDS), however long the table grows
                started = hours_filter(session_hours, *T.session_start_partition())
                window = session_window(
                    session_hours,
                    self.store.metastore.partition_names("raw_clicks"),
                    self.settings.max_session_seconds,
                    self.settings.session_start_tolerance_seconds,
                )
                later = [name for name in window if name not in names]
                log.info(
                    "sessions started in %s hour(s): %s more raw partition(s) read for their later clicks",
                    len(session_hours), len(later),
                )  # fmt: skip
                elsewhere = self.store.read_partitions("raw_clicks", later).where(started)
                session_clicks = enriched.where(started).unionByName(
                    T.enrich_clicks(T.click_facts(elsewhere), articles)
                )
                for table in tables_of_kind(TableKind.AGGREGATE):
                    if table.source is Source.SESSION_CLICKS and table.transform is not None:
                        self.store.replace_partitions(table.name, T.TABLE_TRANSFORMS[table.transform](session_clicks))
        finally:
            enriched.unpersist()
