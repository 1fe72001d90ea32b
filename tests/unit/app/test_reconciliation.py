"""The per-hour reconciliation: an hour's state from its counts, which hours a run checks, the day
gate of clickstream_daily, and the record of what a day was built from."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from app.reconciliation import (
    BALANCED,
    EMPTY,
    HourCounts,
    ReconciliationTable,
    balanced_day,
    built_from_current,
    days_due,
    state_of,
    version_of,
    versions_of,
)
from app.table_checks import hours_to_check
from tests.conftest import isolated_settings

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
    # no clicks, but a row set aside for its time: something came, so it is not empty
    assert state_of(counts(published=0, raw_clicks=0, raw_from_ledger=0, aggregate_clicks={})) == BALANCED


def test_an_hour_to_which_nothing_came_is_empty() -> None:
    nothing = {"published": 0, "rejected": 0, "raw_clicks": 0, "raw_from_ledger": 0}
    assert state_of(counts(**nothing, aggregate_clicks={})) == EMPTY
    assert state_of(counts(**nothing, aggregate_clicks=dict.fromkeys(AGGREGATES, 0))) == EMPTY
    assert state_of(counts(**{**nothing, "quarantined": 1}, aggregate_clicks={})) == BALANCED


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


LATER = datetime(2030, 1, 1, tzinfo=UTC)  # every hour of these tests is closed by then


def test_a_run_checks_its_hours_and_those_changed_or_never_reconciled() -> None:
    other, new = ("2017-10-01", 4), ("2017-10-01", 5)
    current = {HOUR: "a", other: "b", new: "c"}
    reconciled = {HOUR: {"aggregate_versions": "a"}, other: {"aggregate_versions": "old"}}
    clicked = [HOUR, other, new, ("2017-10-02", 5)]

    def check(asked: list[tuple[str, int]] | None) -> set[tuple[str, int]]:
        return hours_to_check(asked, current, reconciled, clicked, LATER, max_quiet_gap=0)

    assert check([]) == {other, new}
    assert check([("2017-10-02", 0)]) == {other, new, ("2017-10-02", 0)}
    assert check(None) == {HOUR, other, new}


def test_an_hour_asked_for_counts_only_in_a_day_with_clicks() -> None:
    # a scheduled run over an hour of a day that has no clicks writes no row for that day
    asked = [("2026-12-04", 10), ("2017-10-01", 20)]
    assert hours_to_check(asked, {}, {}, [HOUR], LATER, max_quiet_gap=0) == {("2017-10-01", 20)}


def test_no_hour_is_checked_before_it_is_over() -> None:
    now = datetime(2017, 10, 1, 5, 30, tzinfo=UTC)
    current = {("2017-10-01", 4): "a", ("2017-10-01", 5): "b"}
    asked = [("2017-10-01", 4), ("2017-10-01", 5)]
    clicked = [("2017-10-01", 3), ("2017-10-01", 5)]
    assert hours_to_check(asked, current, {}, clicked, now, max_quiet_gap=24) == {("2017-10-01", 4)}
    assert hours_to_check(None, current, {}, clicked, now, max_quiet_gap=24) == {("2017-10-01", 4)}
    at_the_end = datetime(2017, 10, 1, 6, tzinfo=UTC)  # an hour closes at its end, exactly
    assert ("2017-10-01", 5) in hours_to_check(asked, current, {}, clicked, at_the_end, max_quiet_gap=24)


def test_the_hours_of_a_quiet_gap_are_checked_once_clicks_lie_past_them() -> None:
    clicked = [("2017-10-01", 10), ("2017-10-01", 16), ("2017-10-03", 0)]  # 5 quiet hours, then 31
    checked = hours_to_check([], {}, {}, clicked, LATER, max_quiet_gap=24)
    assert checked == {("2017-10-01", hour) for hour in range(11, 16)}
    assert hours_to_check([], {}, {}, clicked, LATER, max_quiet_gap=4) == set()  # a gap of 5 is longer
    reconciled = {("2017-10-01", 11): {"aggregate_versions": "-"}}
    assert ("2017-10-01", 11) not in hours_to_check([], {}, reconciled, clicked, LATER, max_quiet_gap=24)


def test_a_quiet_gap_gives_no_rows_to_a_day_without_clicks() -> None:
    clicked = [("2017-10-01", 23), ("2017-10-03", 0)]  # the 24 hours of 2017-10-02 between them
    assert hours_to_check([], {}, {}, clicked, LATER, max_quiet_gap=24) == set()


def test_a_day_is_complete_only_with_24_balanced_hours() -> None:
    rows = {("2017-10-01", hour): {"state": BALANCED} for hour in range(24)}
    assert balanced_day(rows, "2017-10-01") == []
    rows[("2017-10-01", 5)] = {"state": "raw_clicks holds 3 row(s), article_hourly adds up to 2 click(s)"}
    del rows[("2017-10-01", 13)]
    assert balanced_day(rows, "2017-10-01") == [
        "2017-10-01T05: raw_clicks holds 3 row(s), article_hourly adds up to 2 click(s)",
        "2017-10-01T13: never checked",
    ]


def test_an_empty_hour_counts_towards_its_day() -> None:
    rows = {("2017-10-01", hour): {"state": BALANCED if hour % 2 else EMPTY} for hour in range(24)}
    assert balanced_day(rows, "2017-10-01") == []


def day_rows(built: str | None = "v", current: str = "v") -> dict[tuple[str, int], dict[str, Any]]:
    return {
        ("2017-10-01", hour): {"state": BALANCED, "aggregate_versions": current, "day_built_from": built}
        for hour in range(24)
    }


def test_a_complete_day_is_due_until_it_is_built_from_the_versions_its_hours_hold() -> None:
    assert built_from_current(day_rows(), "2017-10-01") and days_due(day_rows()) == []
    assert days_due(day_rows(built=None)) == ["2017-10-01"]  # never built
    assert days_due(day_rows(built="v", current="w")) == ["2017-10-01"]  # an hour changed since
    incomplete = day_rows(built=None)
    del incomplete[("2017-10-01", 7)]
    assert days_due(incomplete) == []  # not complete: nothing to build


class FolderMetastore:
    """The three metastore calls the reconciliation table makes, on a local folder."""

    def __init__(self, root: Path) -> None:
        self.root, self.partitions = root, {}  # type: Path, dict[str, str]

    def table_location(self, table: str) -> str:
        return str(self.root)

    def partition_locations(self, table: str, names: list[str] | None = None) -> dict[str, str]:
        return {name: where for name, where in self.partitions.items() if names is None or name in names}

    def add_partitions(self, table: str, new: dict[str, str]) -> None:
        self.partitions.update(new)


def test_checking_an_hour_again_keeps_the_record_of_what_its_day_was_built_from(tmp_path: Path) -> None:
    table = ReconciliationTable(isolated_settings(tmp_path), FolderMetastore(tmp_path / "table"))  # type: ignore[arg-type]
    at = datetime(2017, 10, 2, tzinfo=UTC)

    def row(hour: int, versions: str) -> dict[str, Any]:
        return {"hour": hour, "raw_clicks": 1, "aggregate_versions": versions, "state": BALANCED, "checked_at": at}

    table.write({("2017-10-01", hour): row(hour, "v1") for hour in range(24)})
    table.mark_day_built("2017-10-01", dict.fromkeys(range(24), "v1"), at)
    assert days_due(table.read()) == []
    table.write({("2017-10-01", 5): row(5, "v2")})  # a late click: the hour's version moves on
    rows = table.read()
    assert rows[("2017-10-01", 5)]["day_built_from"] == "v1" and rows[("2017-10-01", 5)]["day_built_at"] == at
    assert days_due(rows) == ["2017-10-01"]
    table.mark_day_built("2017-10-01", {5: "v2"}, at)
    assert days_due(table.read()) == []


def test_versions_name_each_aggregates_version_folder() -> None:
    assert version_of("/w/article_hourly/versions/20171001T000000-ab12/dt=2017-10-01/hour=3") == "20171001T000000-ab12"
    assert versions_of({"article_hourly": "/w/a/versions/v1/dt=x/hour=1"}) == (
        "article_hourly:v1,category_hourly:-,context_hourly:-"
    )


def test_an_hour_with_erased_clicks_balances_when_raw_and_erased_add_up_to_the_published() -> None:
    # 10 published, 3 erased (an erasure removed them, or a forgotten user's replayed clicks were refused)
    after = counts(raw_clicks=7, raw_from_ledger=7, erased_from_ledger=3, aggregate_clicks=dict.fromkeys(AGGREGATES, 7))
    assert state_of(after) == BALANCED
    missing = counts(
        raw_clicks=7, raw_from_ledger=7, erased_from_ledger=2, aggregate_clicks=dict.fromkeys(AGGREGATES, 7)
    )
    assert (
        state_of(missing)
        == "the ledger published 10 click(s) of this hour, raw_clicks holds 7 of its files and 2 were erased"
    )
    # every click of a quiet hour's only user erased: something came, so it is balanced, not empty
    gone = counts(published=3, rejected=0, raw_clicks=0, raw_from_ledger=0, erased_from_ledger=3, aggregate_clicks={})
    assert state_of(gone) == BALANCED
