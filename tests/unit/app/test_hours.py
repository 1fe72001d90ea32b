"""The forms of a UTC hour and how they convert (`app/hours.py`)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from app.hours import (
    HOUR_KEY_PATTERN,
    day_partition,
    epoch_hour,
    epoch_hour_key,
    hour_end,
    hour_key,
    hour_partition,
    hour_spans,
    hour_start,
    hours_from,
    hours_in_range,
    hours_of_day,
    interval_hours,
    is_closed,
    parse_hour_key,
    parse_moment,
    partition_hour,
    partition_key,
    quiet_hours,
    session_window,
)


def test_the_forms_of_one_hour_convert_into_each_other() -> None:
    hour = ("2017-10-01", 3)
    assert hour_key(hour) == "2017-10-01T03" and parse_hour_key("2017-10-01T03") == hour
    assert hour_partition(hour) == "dt=2017-10-01/hour=3" and partition_hour("dt=2017-10-01/hour=3") == hour
    assert partition_key("dt=2017-10-01/hour=3") == "2017-10-01T03"
    assert day_partition("2017-10-01") == "dt=2017-10-01"
    assert epoch_hour_key(epoch_hour("2017-10-01T03")) == "2017-10-01T03"
    assert hour_start(hour) == datetime(2017, 10, 1, 3, tzinfo=UTC)
    assert partition_hour("dt=2017-10-01") == ("2017-10-01", 0) and partition_hour("bucket=3") == ("", 0)
    assert re.match(HOUR_KEY_PATTERN, "2017-10-01T03") and not re.match(HOUR_KEY_PATTERN, "2017-10-01 03")


def test_ranges_include_both_ends_and_cross_days() -> None:
    assert hours_in_range("2017-10-01T22", "2017-10-02T01") == [
        ("2017-10-01", 22), ("2017-10-01", 23), ("2017-10-02", 0), ("2017-10-02", 1),
    ]  # fmt: skip
    assert hours_in_range("2017-10-01T05", "2017-10-01T05") == [("2017-10-01", 5)]
    assert len(hours_of_day("2017-10-01")) == 24
    with pytest.raises(ValueError, match="2017-10-01T04 is before 2017-10-01T05"):
        hours_in_range("2017-10-01T05", "2017-10-01T04")
    with pytest.raises(ValueError):
        hours_in_range("2017-10-01", "2017-10-01T04")
    with pytest.raises(ValueError):
        hours_of_day("2017-10-01T03")


def test_a_moment_names_the_utc_hour_it_falls_in() -> None:
    assert parse_moment("2017-10-01T05") == datetime(2017, 10, 1, 5, tzinfo=UTC)
    assert parse_moment("2017-10-01T05:59:59") == datetime(2017, 10, 1, 5, tzinfo=UTC)
    assert parse_moment("2017-10-01T05:30:00+0200") == datetime(2017, 10, 1, 3, tzinfo=UTC)
    assert hours_from(parse_moment("2017-10-01T05:30"), parse_moment("2017-10-01T06:10")) == [
        ("2017-10-01", 5), ("2017-10-01", 6),
    ]  # fmt: skip
    with pytest.raises(ValueError, match="not an hour"):
        parse_moment("yesterday")


def test_an_hour_is_closed_at_its_end_and_an_interval_holds_its_start_not_its_end() -> None:
    hour = ("2017-10-01", 23)
    assert hour_end(hour) == datetime(2017, 10, 2, tzinfo=UTC)
    assert not is_closed(hour, datetime(2017, 10, 1, 23, 59, 59, tzinfo=UTC))
    assert is_closed(hour, datetime(2017, 10, 2, tzinfo=UTC))
    start, end = datetime(2017, 10, 1, 22, tzinfo=UTC), datetime(2017, 10, 2, 1, tzinfo=UTC)
    assert interval_hours(start, end) == [("2017-10-01", 22), ("2017-10-01", 23), ("2017-10-02", 0)]
    assert interval_hours(end, end) == []


def test_quiet_hours_lie_between_clicks_no_further_apart_than_the_bound() -> None:
    clicked = [("2017-10-01", 22), ("2017-10-02", 1), ("2017-10-02", 2), ("2017-10-03", 12)]
    assert quiet_hours(clicked, 2) == {("2017-10-01", 23), ("2017-10-02", 0)}  # across midnight
    assert quiet_hours(clicked, 1) == set()
    assert len(quiet_hours(clicked, 33)) == 2 + 33  # the 33 hours between 02:00 and 12:00 the next day
    assert quiet_hours([], 24) == set() and quiet_hours(clicked[:1], 24) == set()


def test_hours_group_into_spans_of_consecutive_hours() -> None:
    hours = [("2017-10-02", 0), ("2017-10-01", 23), ("2017-10-02", 5), ("2017-10-02", 0)]
    assert hour_spans(hours) == [(("2017-10-01", 23), ("2017-10-02", 0)), (("2017-10-02", 5), ("2017-10-02", 5))]


def test_a_session_window_reaches_from_the_tolerance_before_to_the_longest_session_after_and_no_further() -> None:
    """Recomputing an hour's sessions reads the raw hours its sessions may reach: however many later
    hours the table holds, the set stays the same."""
    two_hours, five_minutes = 7200.0, 300.0
    sessions = [("2017-10-01", 0), ("2017-10-01", 2)]
    table = [hour_partition(hour) for hour in hours_in_range("2017-09-30T22", "2017-10-01T06")]
    window = session_window(sessions, table, two_hours, five_minutes)
    # a click may come 5 minutes before 00:00 (hour 23 of the day before) and before 02:00 + 1 h + 2 h
    assert window == [hour_partition(hour) for hour in hours_in_range("2017-09-30T23", "2017-10-01T04")]
    grown = table + [hour_partition(hour) for hour in hours_in_range("2017-10-01T07", "2018-10-01T00")]
    assert session_window(sessions, grown, two_hours, five_minutes) == window
    assert session_window([], grown, two_hours, five_minutes) == []
    assert session_window(sessions, table, 0.0, 0.0) == [
        hour_partition(hour) for hour in hours_in_range("2017-10-01T00", "2017-10-01T02")
    ]
