"""The Spark transforms of `spark_jobs/transforms.py` on small DataFrames: source rows, the
transform, the rows expected. One local Spark for the module, without the metastore or Kafka.

Clicks go in as Kafka records (JSON values with the producer's headers) through `parse_records`
and `raw_clicks`, as in the jobs, so each test reads as: these clicks were published, these rows
come out.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from pyspark.sql import DataFrame, SparkSession

from app.schemas import ARTICLES, CLICKS, HEADER_FILE_VERSION, HEADER_SOURCE_FILE, HEADER_SOURCE_LINE
from spark_jobs import transforms as T
from spark_jobs.tables import KAFKA_SOURCE_SCHEMA

HOUR_MS = 3_600_000
START = 1_506_826_800_000  # 2017-10-01 03:00 UTC
PUBLISHED = datetime(2026, 12, 1, 12, tzinfo=UTC)


@pytest.fixture(scope="module")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SparkSession]:
    """A local Spark of one core for these tests; an application already running in this process
    (the integration tests' own) is used as it is and left running."""
    from app.spark_session import spark_environment
    from tests.conftest import isolated_settings

    running = SparkSession.getActiveSession()
    if running is not None:
        yield running
        return
    os.environ.update(spark_environment(isolated_settings(tmp_path_factory.mktemp("spark"))))
    session = (
        SparkSession.builder.master("local[1]")
        .appName("clickstream-transform-tests")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", "1")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.driver.host", "127.0.0.1")
        .getOrCreate()
    )
    try:
        yield session
    finally:
        session.stop()


def click(
    user: int, session: int, article: int, at_ms: int, session_start: int | None = None, **context: int
) -> dict[str, int]:
    return {
        "user_id": user,
        "session_id": session,
        "session_start": at_ms if session_start is None else session_start,
        "session_size": 2,
        "click_article_id": article,
        "click_timestamp": at_ms,
        "click_environment": context.get("environment", 4),
        "click_deviceGroup": context.get("device_group", 1),
        "click_os": 17,
        "click_country": 1,
        "click_region": 25,
        "click_referrer_type": 2,
    }


def article(article_id: int, category: int, words: int = 100) -> dict[str, int]:
    return {
        "article_id": article_id,
        "category_id": category,
        "created_at_ts": 0,
        "publisher_id": 0,
        "words_count": words,
    }


def kafka_records(spark: SparkSession, topic: str, rows: list[dict[str, Any]]) -> DataFrame:
    records = [
        {
            "key": b"k",
            "value": json.dumps(row).encode(),
            "topic": topic,
            "partition": 0,
            "offset": offset,
            "timestamp": PUBLISHED,
            "timestampType": 0,
            "headers": [
                {"key": HEADER_SOURCE_FILE, "value": b"clicks_hour_000.csv"},
                {"key": HEADER_SOURCE_LINE, "value": str(offset + 2).encode()},
                {"key": HEADER_FILE_VERSION, "value": b"1"},
            ],
        }
        for offset, row in enumerate(rows)
    ]
    return spark.createDataFrame(records, KAFKA_SOURCE_SCHEMA)


def raw_clicks(spark: SparkSession, clicks: list[dict[str, int]]) -> DataFrame:
    return T.raw_clicks(T.parse_records(kafka_records(spark, "clicks", clicks), {"clicks": CLICKS}))


def latest_articles(spark: SparkSession, articles: list[dict[str, int]]) -> DataFrame:
    parsed = T.parse_records(kafka_records(spark, "articles", articles), {"articles": ARTICLES})
    return T.latest_articles(T.raw_articles(parsed))


def enriched(spark: SparkSession, clicks: list[dict[str, int]], articles: list[dict[str, int]]) -> DataFrame:
    return T.enrich_clicks(T.click_facts(raw_clicks(spark, clicks)), latest_articles(spark, articles))


def rows(frame: DataFrame, *columns: str) -> list[tuple[Any, ...]]:
    return sorted(tuple(row[column] for column in columns) for row in frame.collect())


def test_a_click_lands_in_the_utc_hour_of_its_own_time_and_bad_records_are_named(spark: SparkSession) -> None:
    source = [click(1, 10, 100, START + 59 * 60_000), click(1, 10, 100, START + HOUR_MS)]
    parsed = T.parse_records(
        kafka_records(spark, "clicks", [*source, {"user_id": 1}]).union(
            spark.createDataFrame(
                [{"key": b"k", "value": b"not json", "topic": "clicks", "partition": 0, "offset": 9,
                  "timestamp": PUBLISHED, "timestampType": 0, "headers": []}],
                KAFKA_SOURCE_SCHEMA,
            )
        ),
        {"clicks": CLICKS},
    )  # fmt: skip
    assert rows(T.raw_clicks(parsed), "dt", "hour", "source_line") == [("2017-10-01", 3, 2), ("2017-10-01", 4, 3)]
    errors = rows(parsed.where("parse_error IS NOT NULL"), "kafka_offset", "parse_error")
    assert errors[0][1].startswith("missing or not an integer: session_id")
    assert errors[1] == (9, "not a JSON object")
    assert rows(T.quarantined(parsed), "kafka_offset") == [(2,), (9,)]


def test_unknown_articles_count_under_category_minus_one(spark: SparkSession) -> None:
    frame = enriched(spark, [click(1, 10, 100, START), click(2, 20, 999, START)], [article(100, 7)])
    assert rows(frame, "click_article_id", "category_id") == [(100, 7), (999, T.UNKNOWN_CATEGORY)]
    categories = T.category_hourly(frame)
    assert rows(categories, "category_id", "clicks", "articles", "mean_words_count") == [
        (T.UNKNOWN_CATEGORY, 1, 1, None),
        (7, 1, 1, 100.0),
    ]


def test_distinct_counts_are_exact_per_hour_and_per_day_not_sums(spark: SparkSession) -> None:
    # user 1 clicks article 100 three times over two hours in one session; user 2 once
    source = [
        click(1, 10, 100, START),
        click(1, 10, 100, START + 60_000, session_start=START),
        click(1, 10, 100, START + HOUR_MS, session_start=START),
        click(2, 20, 100, START + HOUR_MS),
    ]
    frame = enriched(spark, source, [article(100, 7)])
    assert rows(T.article_hourly(frame), "hour", "article_id", "clicks", "users", "sessions") == [
        (3, 100, 2, 1, 1),
        (4, 100, 2, 2, 2),
    ]
    # the day: 4 clicks by 2 users in 2 sessions, not 3 users and 3 sessions summed over hours
    assert rows(T.article_daily(frame), "dt", "article_id", "clicks", "users", "sessions") == [
        ("2017-10-01", 100, 4, 2, 2)
    ]
    assert rows(T.category_daily(frame), "category_id", "clicks", "users", "sessions", "articles") == [(7, 4, 2, 2, 1)]
    summary = T.day_summary(frame).collect()[0]
    assert (summary["clicks"], summary["users"], summary["sessions"], summary["hours_with_clicks"]) == (4, 2, 2, 2)
    assert [(top["category_id"], top["clicks"]) for top in summary["top_categories"]] == [(7, 4)]


def test_a_session_spanning_hours_is_one_row_in_the_hour_it_started(spark: SparkSession) -> None:
    source = [
        click(1, 10, 100, START + 50 * 60_000),
        click(1, 10, 200, START + 70 * 60_000, session_start=START + 50 * 60_000),
    ]
    sessions = T.session_summary(enriched(spark, source, [article(100, 7), article(200, 8)]))
    assert rows(sessions, "session_id", "clicks_seen", "duration_seconds", "articles", "categories", "dt", "hour") == [
        (10, 2, 1200.0, 2, 2, "2017-10-01", 3)
    ]
    assert rows(T.session_start_hours(T.click_facts(raw_clicks(spark, source))), "dt", "hour") == [("2017-10-01", 3)]


def test_context_groups_clicks_by_environment_and_device(spark: SparkSession) -> None:
    source = [
        click(1, 10, 100, START, environment=4, device_group=1),
        click(2, 20, 100, START, environment=4, device_group=1),
        click(3, 30, 100, START, environment=2, device_group=3),
    ]
    context = T.context_hourly(T.click_facts(raw_clicks(spark, source)))
    assert rows(context, "click_environment", "click_device_group", "clicks", "users") == [(2, 3, 1, 1), (4, 1, 2, 2)]


def test_an_empty_hour_gives_empty_tables_with_their_partition_columns_last(spark: SparkSession) -> None:
    frame = enriched(spark, [], [article(100, 7)])
    for name in ("article_hourly", "category_hourly", "context_hourly", "session_summary"):
        table = T.TABLE_TRANSFORMS[name](frame)
        assert table.count() == 0, name
        assert table.columns[-2:] == ["dt", "hour"], name
    assert T.article_daily(frame).columns[-1] == "dt"


def test_an_article_change_is_upserted_and_only_changed_attributes_count_as_changes(spark: SparkSession) -> None:
    current = latest_articles(spark, [article(100, 7), article(200, 8)])
    incoming = latest_articles(spark, [article(100, 7), article(200, 9), article(300, 1)])
    assert rows(T.changed_articles(incoming, current), "article_id") == [(200,), (300,)]
    assert rows(T.upserted(current, incoming), "article_id", "category_id", "bucket") == [
        (100, 7, 100 % 16), (200, 9, 200 % 16), (300, 1, 300 % 16),
    ]  # fmt: skip
    # the latest record of a key wins
    assert rows(latest_articles(spark, [article(100, 7), article(100, 5)]), "article_id", "category_id") == [(100, 5)]


def test_a_forgotten_users_clicks_are_split_off_by_the_keyed_hash_and_keep_no_user(spark: SparkSession) -> None:
    from app.erasure import user_hash

    clicks = raw_clicks(spark, [click(7, 1, 10, START), click(8, 2, 10, START), click(7, 3, 11, START + HOUR_MS)])
    hashed = clicks.select("user_id", T.user_hash("secret").alias("hash")).collect()
    assert {(row["user_id"], row["hash"]) for row in hashed} == {
        (7, user_hash("secret", 7)),
        (8, user_hash("secret", 8)),
    }

    kept, forgotten = T.split_forgotten(clicks, "secret", [user_hash("secret", 7)])
    assert rows(kept, "user_id") == [(8,)] and kept.columns == clicks.columns
    assert sorted(rows(forgotten, "user_id", "hour")) == [(7, 3), (7, 4)]
    erased = T.erased_clicks(forgotten)
    assert "user_id" not in erased.columns and "session_id" not in erased.columns and erased.count() == 2
    # another key makes another hash: the list of one installation says nothing about another's users
    assert T.split_forgotten(clicks, "other", [user_hash("secret", 7)])[1].count() == 0


def test_the_user_index_holds_one_row_per_user_and_hour_in_the_users_bucket(spark: SparkSession) -> None:
    from app.table_catalog import USER_BUCKETS

    clicks = raw_clicks(
        spark,
        [
            click(7, 1, 10, START),
            click(7, 1, 11, START + 60_000),  # the same hour and session: one row
            click(7, 1, 12, START + HOUR_MS, session_start=START),  # the next hour, the session started before
            click(7 + USER_BUCKETS, 2, 10, START),  # another user of the same bucket
            click(8, 3, 10, START),
        ],
    )
    index = T.user_hours(clicks)
    assert index.columns[-1] == "bucket"
    assert sorted(rows(index, "user_id", "hour", "start_hour", "bucket")) == [
        (7, 3, 3, 7),
        (7, 4, 3, 7),
        (8, 3, 3, 8),
        (7 + USER_BUCKETS, 3, 3, 7),
    ]
