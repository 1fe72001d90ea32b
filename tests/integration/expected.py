"""The aggregates computed independently, with pandas straight from the CSV files, for comparison.

Nothing here imports the pipeline's transforms: the definitions are restated from the issue so
that a mistake in the Spark code cannot hide in the expectation.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd


def _rows(grouped: pd.DataFrame) -> Iterable[Any]:
    """The rows of a grouped result, group keys included, as named tuples."""
    return grouped.reset_index().itertuples(index=False)


def load_clicks(files: Iterable[Path]) -> pd.DataFrame:
    clicks = pd.concat([pd.read_csv(path) for path in files], ignore_index=True)
    clicks = clicks.rename(columns={"click_deviceGroup": "click_device_group"})
    moment = pd.to_datetime(clicks["click_timestamp"], unit="ms", utc=True)
    clicks["dt"] = moment.dt.strftime("%Y-%m-%d")
    clicks["hour"] = moment.dt.hour.astype("int64")
    return clicks


def enrich(clicks: pd.DataFrame, articles: pd.DataFrame | None) -> pd.DataFrame:
    if articles is None:
        columns = ["article_id", "category_id", "created_at_ts", "publisher_id", "words_count"]
        articles = pd.DataFrame({column: pd.Series(dtype="float64") for column in columns})
    merged = clicks.merge(articles, left_on="click_article_id", right_on="article_id", how="left")
    merged["category_id"] = merged["category_id"].fillna(-1).astype("int64")
    return merged


# the counts every hourly aggregate has: clicks, distinct users, distinct sessions
COUNTS: dict[str, tuple[str, str]] = {
    "clicks": ("user_id", "size"),
    "users": ("user_id", "nunique"),
    "sessions": ("session_id", "nunique"),
}


def _counts(r: Any) -> tuple[int, int, int]:
    return int(r.clicks), int(r.users), int(r.sessions)


def _counts_and_hour(r: Any) -> tuple[Any, ...]:
    return (*_counts(r), r.dt, int(r.hour))


def article_hourly(enriched: pd.DataFrame) -> set[tuple[Any, ...]]:
    grouped = enriched.groupby(["dt", "hour", "click_article_id"], dropna=False).agg(
        category_id=("category_id", "max"), publisher_id=("publisher_id", "max"), **COUNTS
    )
    return {
        (
            int(r.click_article_id),
            int(r.category_id),
            _int_or_none(r.publisher_id),
            *_counts_and_hour(r),
        )
        for r in _rows(grouped)
    }


def category_hourly(enriched: pd.DataFrame) -> set[tuple[Any, ...]]:
    counts = enriched.groupby(["dt", "hour", "category_id"]).agg(**COUNTS, articles=("click_article_id", "nunique"))
    distinct_articles = enriched[["dt", "hour", "category_id", "click_article_id", "words_count"]].drop_duplicates()
    words = distinct_articles.groupby(["dt", "hour", "category_id"]).agg(mean_words=("words_count", "mean"))
    return {
        (
            int(r.category_id),
            *_counts(r),
            int(r.articles),
            None if pd.isna(r.mean_words) else round(float(r.mean_words), 6),
            r.dt,
            int(r.hour),
        )
        for r in _rows(counts.join(words))
    }


# the context dimensions, written out here rather than imported: this module is the independent computation
CONTEXT = [f"click_{name}" for name in ("environment", "device_group", "os", "country", "region", "referrer_type")]


def context_hourly(clicks: pd.DataFrame) -> set[tuple[Any, ...]]:
    grouped = clicks.groupby(["dt", "hour", *CONTEXT]).agg(**COUNTS)
    return {(*(int(getattr(r, column)) for column in CONTEXT), *_counts_and_hour(r)) for r in _rows(grouped)}


def sessions(enriched: pd.DataFrame) -> set[tuple[Any, ...]]:
    grouped = enriched.groupby(["session_id", "user_id", "session_start", "session_size"]).agg(
        clicks_seen=("click_timestamp", "size"),
        first_click=("click_timestamp", "min"),
        last_click=("click_timestamp", "max"),
        articles=("click_article_id", "nunique"),
        categories=("category_id", "nunique"),
    )
    result = set()
    for r in _rows(grouped):
        started = pd.Timestamp(int(r.session_start), unit="ms", tz="UTC")
        duration = round((int(r.last_click) - int(r.first_click)) / 1000.0, 6)
        result.add(
            (
                int(r.session_id),
                int(r.user_id),
                int(r.session_start),
                int(r.session_size),
                int(r.clicks_seen),
                int(r.first_click),
                int(r.last_click),
                duration,
                int(r.articles),
                int(r.categories),
                started.strftime("%Y-%m-%d"),
                int(started.hour),
            )
        )
    return result


def _int_or_none(value: Any) -> int | None:
    return None if pd.isna(value) else int(value)


def expected_tables(click_files: Iterable[Path], articles_file: Path | None) -> dict[str, set[tuple[Any, ...]]]:
    clicks = load_clicks(click_files)
    articles = pd.read_csv(articles_file) if articles_file is not None else None
    enriched = enrich(clicks, articles)
    return {
        "article_hourly": article_hourly(enriched),
        "category_hourly": category_hourly(enriched),
        "context_hourly": context_hourly(clicks),
        "sessions": sessions(enriched),
    }


def normalise(rows: Iterable[Any]) -> set[tuple[Any, ...]]:
    """Spark rows as plain tuples, floats rounded like the expectation."""
    return {tuple(round(value, 6) if isinstance(value, float) else value for value in row) for row in rows}


def daily_tables(click_files: Iterable[Path], articles_file: Path | None) -> dict[str, set[tuple[Any, ...]]]:
    """The daily tables: per article and per category the day's clicks with users and sessions
    counted over the whole day, and one summary row per day with its top 10 categories."""
    clicks = load_clicks(click_files)
    enriched = enrich(clicks, pd.read_csv(articles_file) if articles_file is not None else None)
    per_article = enriched.groupby(["dt", "click_article_id"]).agg(
        category_id=("category_id", "max"), publisher_id=("publisher_id", "max"), **COUNTS
    )
    per_category = enriched.groupby(["dt", "category_id"]).agg(
        clicks=("user_id", "size"),
        users=("user_id", "nunique"),
        sessions=("session_id", "nunique"),
        articles=("click_article_id", "nunique"),
    )
    summary = set()
    for dt, day in enriched.groupby("dt"):
        ranked = sorted(day.groupby("category_id").size().items(), key=lambda item: (-item[1], item[0]))[:10]
        summary.add(
            (
                len(day),
                int(day["user_id"].nunique()),
                int(day["session_id"].nunique()),
                int(day["click_article_id"].nunique()),
                int(day["hour"].nunique()),
                tuple((int(str(category)), int(count)) for category, count in ranked),
                dt,
            )
        )
    return {
        "article_daily": {
            (
                int(r.click_article_id),
                int(r.category_id),
                _int_or_none(r.publisher_id),
                int(r.clicks),
                int(r.users),
                int(r.sessions),
                r.dt,
            )
            for r in _rows(per_article)
        },
        "category_daily": {
            (int(r.category_id), int(r.clicks), int(r.users), int(r.sessions), int(r.articles), r.dt)
            for r in _rows(per_category)
        },
        "day_summary": summary,
    }
