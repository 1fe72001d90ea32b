"""What both Spark jobs do with data: land a batch of Kafka records, and recompute hours exactly.

`land_batch()` is the streaming job's micro-batch: it parses both topics' records, sets aside
what does not parse (the quarantine table), merges the good records into the raw tables (whole
partitions, deduplicated by Kafka coordinates, so a replayed batch adds nothing), refreshes the
`articles` table when metadata arrived, and recomputes every hour the batch touched, including the
hours whose clicks point at an article that just changed.

`recompute_hours()` rebuilds the aggregate partitions of the given hours from the raw clicks and
the current articles; the batch job calls it for a range of hours. Both go through `TableStore`,
so every partition is replaced whole and atomically.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from app.checkpoint import add_pending_hours, clear_pending_hours, pending_hours
from app.schemas import ARTICLES, CLICKS
from app.settings import Settings
from spark_jobs import transforms as T
from spark_jobs.tables import TableStore

log = logging.getLogger(__name__)

Hour = tuple[str, int]  # (dt, hour), UTC
RECORD_KEY = ("kafka_partition", "kafka_offset")  # one Kafka record of a raw table's topic
METASTORE_WAIT_SECONDS = 120.0  # how long a micro-batch waits for a metastore that went away


def hours_filter(hours: Iterable[Hour], day: Column | None = None, hour_of_day: Column | None = None) -> Column:
    """Rows whose (day, hour) is one of `hours`; by default the partition columns.

    The metastore is asked only for the days (`dt IN (...)`, one short clause); the hours are
    picked from those partitions by Spark. An OR of one (dt, hour) term per hour is pushed to
    the metastore whole, and with a few hundred hours (a drain after a backlog: the 72 files of
    the Globo data set hold clicks of 207 hours) its Derby refuses the query as too complex,
    its fallback refuses integer partition keys, and the micro-batch failed every time it ran."""
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


def _counts(rows: DataFrame, *columns: str) -> dict[tuple[Any, ...], int]:
    """Rows per value of `columns` (the partitions rows fall in), in one Spark job."""
    return {tuple(row[c] for c in columns): int(row["count"]) for row in rows.groupBy(*columns).count().collect()}


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
    """With `defer_recompute` (an available-now drain) a micro-batch lands raw rows only and adds the
    hours it touched to the checkpoint's pending hours; `recompute_pending()` recomputes them once at
    the end. A drain of a backlog touches most hours in every micro-batch, so recomputing after each
    one did the same work several times (three micro-batches of the Globo set recomputed 457 hours,
    of 207). A long-running stream recomputes after each micro-batch, so its aggregates follow it."""

    def __init__(self, store: TableStore, settings: Settings, defer_recompute: bool = False) -> None:
        self.store = store
        self.settings = settings
        self.defer_recompute = defer_recompute
        self.failure: str | None = None  # why the last micro-batch failed, in words, for the job's exit

    def process_batch(self, records: DataFrame, batch_id: int) -> None:
        """`foreachBatch` callback of the streaming query. A batch that fails is not committed:
        the query stops, and the next start runs the same offsets again. A batch that failed
        because the metastore was away (a restart) runs again once it answers, within
        `METASTORE_WAIT_SECONDS`; landing a batch twice gives the same tables."""
        for attempt in (1, 2):
            try:
                self.land_batch(records, batch_id)
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

    def land_batch(self, records: DataFrame, batch_id: int) -> BatchResult:
        """Land one micro-batch of Kafka records (both topics) and recompute what it touched."""
        result = BatchResult()
        # each record is read from Kafka once and its JSON parsed once: both topics' parsed rows are
        # kept for the quarantine, the raw tables and the counts (parsing them again for each was
        # the largest cost of a batch)
        records = records.persist()
        clicks_parsed = T.parse_records(records.where(F.col("topic") == self.settings.kafka_topic), CLICKS).persist()
        articles_parsed = T.parse_records(
            records.where(F.col("topic") == self.settings.kafka_metadata_topic), ARTICLES
        ).persist()
        try:
            result.quarantined = self._land_quarantine(
                T.quarantined(clicks_parsed).unionByName(T.quarantined(articles_parsed))
            )
            records.unpersist()  # both parsed caches are filled now
            changed_articles = self._land_articles(T.raw_articles(articles_parsed), result)
            touched = self._land_clicks(T.raw_clicks(clicks_parsed), result)
            if changed_articles is not None:
                raw = self.store.table("raw_clicks")
                if self.defer_recompute:  # hours already to be recomputed need not be looked for
                    raw = raw.where(~hours_filter([*pending_hours(self.settings), *touched]))
                hit = raw.join(changed_articles, raw.click_article_id == changed_articles.article_id, "left_semi")
                touched = sorted(set(touched) | set(_hours(hit)))
            result.hours = len(touched)
            if self.defer_recompute:
                add_pending_hours(self.settings, touched)  # before Spark commits the micro-batch
            else:
                self.recompute_hours(touched)
                self.remove_unused_versions()  # a drain removes them once, after recomputing
        finally:
            records.unpersist()
            clicks_parsed.unpersist()
            articles_parsed.unpersist()
        log.info(
            "batch %s: %s clicks, %s articles, %s quarantined, %s hour(s) %s",
            batch_id,
            result.clicks,
            result.articles,
            result.quarantined,
            result.hours,
            "to recompute after the drain" if self.defer_recompute else "recomputed",
        )
        return result

    def recompute_pending(self) -> int:
        """Recompute the hours landed but not recomputed yet (by this drain, or one that died)."""
        hours = pending_hours(self.settings)
        if hours:
            started = time.monotonic()
            log.info("recomputing %s hour(s) landed by the drain", len(hours))
            self.recompute_hours(hours)
            clear_pending_hours(self.settings, hours)
            self.remove_unused_versions()
            log.info("recomputed %s hour(s) landed by the drain in %.1f s", len(hours), time.monotonic() - started)
        return len(hours)

    # `new` below is read from the batch's parsed caches, so it is cheap to read twice; its
    # count and partitions come from one job
    def _land_quarantine(self, rejected: DataFrame) -> int:
        days = _counts(rejected, "dt")
        count = sum(days.values())
        if count:
            existing = self.store.table("quarantine").where(F.col("dt").isin([dt for (dt,) in days]))
            self.store.replace_partitions(
                "quarantine", existing.unionByName(rejected), unique_by=("kafka_topic", *RECORD_KEY)
            )
            log.warning("%s record(s) quarantined (see table %s.quarantine)", count, self.settings.hive_database)
        return count

    def _land_articles(self, new: DataFrame, result: BatchResult) -> DataFrame | None:
        days = _counts(new, "dt")
        result.articles = sum(days.values())
        if not result.articles:
            return None
        existing = self.store.table("raw_articles").where(F.col("dt").isin([dt for (dt,) in days]))
        self.store.replace_partitions("raw_articles", existing.unionByName(new), unique_by=RECORD_KEY)
        self.store.replace_table("articles", T.latest_articles(self.store.table("raw_articles")))
        return new.select("article_id").distinct().localCheckpoint()

    def _land_clicks(self, new: DataFrame, result: BatchResult) -> list[Hour]:
        hours = _counts(new, "dt", "hour")
        result.clicks = sum(hours.values())
        if not result.clicks:
            return []
        touched = sorted((dt, int(hour)) for dt, hour in hours)
        existing = self.store.table("raw_clicks").where(hours_filter(touched))
        self.store.replace_partitions("raw_clicks", existing.unionByName(new), unique_by=RECORD_KEY)
        return touched

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

    def _inputs(self, hours: list[Hour]) -> dict[Hour, tuple[str | None, str | None]]:
        """The versions an hour's aggregates are computed from: its raw partition and the articles."""
        raw = self.store.snapshot("raw_clicks")
        articles = self.store.snapshot("articles").get("")
        return {(dt, hour): (raw.get(f"dt={dt}/hour={hour}"), articles) for dt, hour in hours}

    def _recompute(self, hours: list[Hour]) -> None:
        raw = self.store.table("raw_clicks")
        articles = self.store.table("articles")
        clicks = raw.where(hours_filter(hours))
        # read once for the three hourly aggregates, without the Kafka coordinates none of them reads
        enriched = T.enrich_clicks(T.click_facts(clicks), articles).persist()
        try:
            self.store.replace_partitions("article_hourly", T.article_hourly(enriched))
            self.store.replace_partitions("category_hourly", T.category_hourly(enriched))
            self.store.replace_partitions("context_hourly", T.context_hourly(enriched))
            session_hours = _hours(T.session_start_hours(enriched))
        finally:
            enriched.unpersist()
        if session_hours:
            # a session belongs to the hour it started in, and its clicks may lie in later hours
            session_clicks = raw.where(F.col("dt") >= session_hours[0][0]).where(
                hours_filter(session_hours, *T.session_start_partition())
            )
            summary = T.session_summary(T.enrich_clicks(T.click_facts(session_clicks), articles))
            self.store.replace_partitions("sessions", summary)

    def remove_unused_versions(self) -> None:
        for table in self.store.tables:
            self.store.remove_unused_versions(table)
