"""The table catalogue: every Hive table of clickstream, declared once.

Each entry says what a table is (its name, how it is written, where it lives, its partitions),
which transform of `spark_jobs/transforms.py` builds its rows and from what input. Everything
else derives from this list: the Spark jobs create and write the tables from it (schemas come
from applying the transform to an empty input), the Airflow assets, the summary, the pipeline
view and `check_tables` list the tables from it. A test fails when a table transform has no
entry here or an entry names no table transform.

Adding an hourly aggregate is one transform decorated with `@table_transform` that takes the
enriched clicks of some hours and returns rows with `dt` and `hour` last, plus one `Table` entry
of kind `AGGREGATE` with source `ENRICHED_CLICKS`: the recomputation writes it for every hour it
recomputes, and when it has a `clicks` column that adds up to the hour's raw clicks
(`adds_up_to_raw_clicks`), `check_tables` checks it.

A daily table (kind `DAILY`, source `DAY_CLICKS`, partitioned by `dt`) is built the same way from
the enriched clicks of whole days by `spark_jobs/build_days.py`, which `clickstream_daily` runs. A
table written without Spark (`hour_reconciliation`, by `check_tables`) has no transform and
declares its columns instead; the Spark jobs still create it, so any Hive reader finds it.

This module imports nothing heavy: the Airflow DAG files and the pipeline view read it at parse time.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class TableKind(Enum):
    RAW = "raw"  # append-only: one row per Kafka record, never rewritten (compaction only merges files)
    DIMENSION = "dimension"  # one row per key, upserted: a batch rewrites only the buckets of its keys
    AGGREGATE = "aggregate"  # recomputed per hour from the raw clicks, each partition replaced whole
    DAILY = "daily"  # built per day from the raw clicks of its 24 hours by clickstream_daily, each day replaced whole
    CHECK = "check"  # written by check_tables (no Spark): an hour's row replaced each time the hour is checked
    ERASURE = "erasure"  # what erasure requests need: what was forgotten (never the id), and where a user's clicks are


class Source(Enum):
    """What a table's transform takes as input."""

    CLICK_RECORDS = "parsed records of the clicks topic"
    ANY_RECORDS = "parsed records of either topic"
    ARTICLE_RECORDS = "parsed records of the metadata topic"
    RAW_ARTICLES = "rows of raw_articles"
    ENRICHED_CLICKS = "clicks of the recomputed hours with their articles"
    SESSION_CLICKS = "clicks of the sessions that started in the recomputed hours, with their articles"
    DAY_CLICKS = "clicks of the days built, with their articles"
    CHECKS = "the per-hour counts check_tables compares"
    RAW_CLICKS = "rows of raw_clicks"
    ERASURE_REQUESTS = "the erasure requests forget_users carries out"


class Home(Enum):
    LAKE = "lake"  # PARQUET_DESTINATION_PATH: what came from Kafka
    WAREHOUSE = "warehouse"  # HIVE_WAREHOUSE_DIR/<database>.db: what the pipeline derives


HOURLY = ("dt", "hour")
DAILY = ("dt",)
ARTICLE_BUCKETS = 16  # partitions of `articles` (article_id mod 16): an upsert rewrites the buckets of its keys
USER_BUCKETS = 16  # partitions of `user_hours` (user_id mod 16): finding a user's hours reads one of them


@dataclass(frozen=True)
class Table:
    name: str
    kind: TableKind
    transform: str | None  # the function of spark_jobs.transforms that builds its rows (None: not Spark)
    source: Source
    home: Home
    partition_columns: tuple[str, ...]
    one_row_per: str
    ledger_kind: str | None = None  # raw tables: the producer's file kind whose rows it holds
    adds_up_to_raw_clicks: bool = False  # aggregates: its `clicks` of an hour sum to the hour's raw clicks
    columns: tuple[tuple[str, str], ...] = ()  # a table not built by a transform: its data columns (Hive types)

    @property
    def hourly(self) -> bool:
        return self.partition_columns == HOURLY


TABLES: tuple[Table, ...] = (
    Table(
        "raw_clicks",
        TableKind.RAW,
        "raw_clicks",
        Source.CLICK_RECORDS,
        Home.LAKE,
        HOURLY,
        "click, with its Kafka coordinates and source file/line; partitioned by the click's UTC hour",
        ledger_kind="clicks",
    ),
    Table(
        "raw_articles",
        TableKind.RAW,
        "raw_articles",
        Source.ARTICLE_RECORDS,
        Home.LAKE,
        ("dt",),
        "article record as published (every version); partitioned by the day it arrived",
        ledger_kind="articles",
    ),
    Table(
        "quarantine",
        TableKind.RAW,
        "quarantined",
        Source.ANY_RECORDS,
        Home.LAKE,
        ("dt",),
        "record that did not parse, with the reason and its click's hour when readable; partitioned by the day it "
        "arrived",
    ),
    Table(
        "articles",
        TableKind.DIMENSION,
        "latest_articles",
        Source.RAW_ARTICLES,
        Home.WAREHOUSE,
        ("bucket",),
        f"article: its latest metadata; partitioned by `bucket` (article_id mod {ARTICLE_BUCKETS})",
    ),
    Table(
        "article_hourly",
        TableKind.AGGREGATE,
        "article_hourly",
        Source.ENRICHED_CLICKS,
        Home.WAREHOUSE,
        HOURLY,
        "article and hour: clicks, distinct users and sessions, category, publisher",
        adds_up_to_raw_clicks=True,
    ),
    Table(
        "category_hourly",
        TableKind.AGGREGATE,
        "category_hourly",
        Source.ENRICHED_CLICKS,
        Home.WAREHOUSE,
        HOURLY,
        "category and hour: clicks, distinct users, sessions, articles; mean word count of the distinct clicked "
        "articles",
        adds_up_to_raw_clicks=True,
    ),
    Table(
        "context_hourly",
        TableKind.AGGREGATE,
        "context_hourly",
        Source.ENRICHED_CLICKS,
        Home.WAREHOUSE,
        HOURLY,
        "environment, device group, OS, country, region, referrer type and hour: clicks, distinct users and sessions",
        adds_up_to_raw_clicks=True,
    ),
    Table(
        "sessions",
        TableKind.AGGREGATE,
        "session_summary",
        Source.SESSION_CLICKS,
        Home.WAREHOUSE,
        HOURLY,
        "session: user, start, declared size, clicks seen, first and last click, duration, distinct articles and "
        "categories; partitioned by the UTC hour the session started",
    ),
)

TABLES += (
    Table(
        "article_daily",
        TableKind.DAILY,
        "article_daily",
        Source.DAY_CLICKS,
        Home.WAREHOUSE,
        DAILY,
        "article and UTC day: clicks, exact distinct users and sessions of the day, category, publisher",
    ),
    Table(
        "category_daily",
        TableKind.DAILY,
        "category_daily",
        Source.DAY_CLICKS,
        Home.WAREHOUSE,
        DAILY,
        "category and UTC day: clicks, exact distinct users, sessions and articles of the day",
    ),
    Table(
        "day_summary",
        TableKind.DAILY,
        "day_summary",
        Source.DAY_CLICKS,
        Home.WAREHOUSE,
        DAILY,
        "UTC day: clicks, distinct users, sessions and articles, the hours with clicks, the top 10 categories",
    ),
    Table(
        "hour_reconciliation",
        TableKind.CHECK,
        None,
        Source.CHECKS,
        Home.WAREHOUSE,
        DAILY,
        "UTC hour (`hour` column; one file per day): clicks published per the ledger, set aside by the producer, "
        "quarantined by Spark, landed in raw_clicks, erased (erased_clicks), each aggregate's click sum, the state "
        "(`balanced`, `empty` "
        "or the first disagreement), when it was checked, and the hour's version its day was last built from",
        columns=(
            ("hour", "int"),
            ("published", "bigint"),
            ("rejected", "bigint"),
            ("quarantined", "bigint"),
            ("raw_clicks", "bigint"),
            *((f"{table.name}_clicks", "bigint") for table in TABLES if table.adds_up_to_raw_clicks),
            ("aggregate_versions", "string"),
            ("state", "string"),
            ("checked_at", "timestamp"),
            ("day_built_from", "string"),
            ("day_built_at", "timestamp"),
            ("erased", "bigint"),
        ),
    ),
    Table(
        "erasures",
        TableKind.ERASURE,
        None,
        Source.ERASURE_REQUESTS,
        Home.WAREHOUSE,
        DAILY,
        "erasure request (one user each): the keyed hash of the user (never the id), when it was asked and done, "
        "the hours and days it rewrote, the raw rows it removed; partitioned by the day it was asked. Also the "
        "suppression list: a click of a user listed here never enters raw_clicks again",
        columns=(
            ("erasure_id", "string"),
            ("user_hash", "string"),
            ("requested_at", "timestamp"),
            ("done_at", "timestamp"),
            ("hours", "string"),
            ("days", "string"),
            ("raw_rows_removed", "bigint"),
        ),
    ),
    Table(
        "erased_clicks",
        TableKind.ERASURE,
        "erased_clicks",
        Source.RAW_CLICKS,
        Home.LAKE,
        HOURLY,
        "click removed by an erasure or refused because its user was forgotten: its file, line and Kafka "
        "coordinates, never its user; partitioned by the click's UTC hour, which hour_reconciliation counts",
    ),
    Table(
        "user_hours",
        TableKind.ERASURE,
        "user_hours",
        Source.RAW_CLICKS,
        Home.WAREHOUSE,
        ("bucket",),
        "user and UTC hour with clicks in raw_clicks (and the hour their session started), appended with them: how "
        f"an erasure finds a user's hours without reading raw_clicks; partitioned by `bucket` (user_id mod "
        f"{USER_BUCKETS}). May name an hour the user no longer has clicks in, never miss one",
    ),
)
TABLE_NAMES: tuple[str, ...] = tuple(table.name for table in TABLES)
BY_NAME: dict[str, Table] = {table.name: table for table in TABLES}


def tables_of_kind(kind: TableKind) -> tuple[Table, ...]:
    return tuple(table for table in TABLES if table.kind is kind)


def raw_table_of_ledger_kind() -> dict[str, str]:
    """The producer's file kinds ("clicks", "articles") and the raw table that holds their rows."""
    return {table.ledger_kind: table.name for table in TABLES if table.ledger_kind}


def daily_tables() -> tuple[Table, ...]:
    return tables_of_kind(TableKind.DAILY)


def aggregates_adding_up_to_raw_clicks() -> tuple[str, ...]:
    return tuple(table.name for table in TABLES if table.adds_up_to_raw_clicks)


assert len(BY_NAME) == len(TABLES), "two catalogue entries share a name"
