"""The per-hour reconciliation: an hour's state from its counts, which hours a run checks, and the
day gate of clickstream_daily."""

from __future__ import annotations

from app.reconciliation import BALANCED, HourCounts, balanced_day, state_of, version_of, versions_of
from app.table_checks import hours_to_check

HOUR = ("2017-10-01", 3)
AGGREGATES = {"article_hourly": 10, "category_hourly": 10, "context_hourly": 10}


def counts(**changes: object) -> HourCounts:
    values: dict[str, object] = {
        "hour": HOUR,
        "published": 10,
        "rejected": 1,
        "quarantined": 0,
        "raw_clicks": 10,
        "raw_from_ledger": 10,
        "aggregate_clicks": AGGREGATES,
        "aggregate_versions": "v",
    }
    return HourCounts(**{**values, **changes})  # type: ignore[arg-type]


def test_an_hour_is_balanced_when_ledger_raw_and_every_aggregate_agree() -> None:
    assert state_of(counts()) == BALANCED
    assert state_of(counts(published=None)) == BALANCED  # files published before per-hour counts: not compared
    assert state_of(counts(published=0, raw_clicks=0, raw_from_ledger=0, aggregate_clicks={})) == BALANCED  # empty


def test_the_first_disagreement_is_named_in_words() -> None:
    assert state_of(counts(raw_from_ledger=8, raw_clicks=8)) == (
        "the ledger published 10 click(s) of this hour, raw_clicks holds 8 of its files"
    )
    assert state_of(counts(aggregate_clicks={**AGGREGATES, "category_hourly": 9})) == (
        "raw_clicks holds 10 row(s), category_hourly adds up to 9 click(s)"
    )
    # rows from another producer are in raw_clicks but not in the ledger's count
    assert state_of(counts(raw_clicks=12, aggregate_clicks=dict.fromkeys(AGGREGATES, 12))) == BALANCED


def test_an_hour_with_a_file_not_drained_yet_is_landing() -> None:
    assert state_of(counts(landing=("clicks_hour_007.csv",), raw_from_ledger=3)).startswith("landing: clicks_hour_007")


def test_a_run_checks_its_hours_and_those_changed_or_never_reconciled() -> None:
    other, new = ("2017-10-01", 4), ("2017-10-01", 5)
    current = {HOUR: "a", other: "b", new: "c"}
    reconciled = {HOUR: {"aggregate_versions": "a"}, other: {"aggregate_versions": "old"}}
    assert hours_to_check([], current, reconciled) == {other, new}
    assert hours_to_check([("2017-10-02", 0)], current, reconciled) == {other, new, ("2017-10-02", 0)}
    assert hours_to_check(None, current, reconciled) == {HOUR, other, new}


def test_a_day_is_complete_only_with_24_balanced_hours() -> None:
    rows = {("2017-10-01", hour): {"state": BALANCED} for hour in range(24)}
    assert balanced_day(rows, "2017-10-01") == []
    rows[("2017-10-01", 5)] = {"state": "raw_clicks holds 3 row(s), article_hourly adds up to 2 click(s)"}
    del rows[("2017-10-01", 13)]
    assert balanced_day(rows, "2017-10-01") == [
        "2017-10-01T05: raw_clicks holds 3 row(s), article_hourly adds up to 2 click(s)",
        "2017-10-01T13: never checked",
    ]


def test_versions_name_each_aggregates_version_folder() -> None:
    assert version_of("/w/article_hourly/versions/20171001T000000-ab12/dt=2017-10-01/hour=3") == "20171001T000000-ab12"
    assert versions_of({"article_hourly": "/w/a/versions/v1/dt=x/hour=1"}) == (
        "article_hourly:v1,category_hourly:-,context_hourly:-"
    )
