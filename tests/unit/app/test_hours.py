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
    hour_key,
    hour_partition,
    hour_start,
    hours_from,
    hours_in_range,
    hours_of_day,
    parse_hour_key,
    parse_moment,
    partition_hour,
    partition_key,
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
