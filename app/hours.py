"""A UTC hour of clicks: its forms and how they convert.

Four forms are in use: an hour *key* (`2017-10-01T03`, the text users type, Airflow's asset
partition key and the ledger's per-hour counts), a table *hour* (`("2017-10-01", 3)`, the
`dt`/`hour` partition values of the hourly tables), its *partition name* (`dt=2017-10-01/hour=3`,
Hive's), and an *epoch hour* (hours since 1970, what the producer computes from a click's
millisecond timestamp). A day is `2017-10-01`. Ranges of hours include both ends.

It also owns the rules of which hours a run may speak for (`RUN_HOURS_RULE`, shown in the DAGs'
docs), and which hours without clicks count as checked and *empty* (`quiet_hours`).

This module imports nothing of the project: every other module may use it.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

MS_PER_HOUR = 3_600_000
HOUR_LAYOUT = "%Y-%m-%dT%H"
DAY_LAYOUT = "%Y-%m-%d"
HOUR_KEY_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}$"  # an hour key, for forms that check what users type
DAY_PATTERN = r"^\d{4}-\d{2}-\d{2}$"
# what a user may give for an hour (the key, or a timestamp within the hour)
MOMENT_LAYOUTS = ("%Y-%m-%dT%H", "%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S%z")

Hour = tuple[str, int]  # (dt, hour of day): an hourly table's partition values

RUN_HOURS_RULE = """\
**Which hours a run covers.** One rule for every kind of run (`app/hours.py`):

- a run with `recompute_from` and `recompute_to` (the Trigger form) covers those hours, both ends
  included;
- any other run covers its data interval `[start, end)`, as the run's page shows it. A scheduled
  run at 11:00 covers 10:00-11:00 (the hour that has just closed); a backfill's run of logical
  date 02:00 covers 02:00-03:00, so `backfill create --from-date ...T00:00:00 --to-date
  ...T05:00:00` covers hours 00 to 05; a manual run given a logical date covers the closed hour
  before it, as Airflow sets its interval;
- a manual run with neither covers no hour of its own: it lands its files, and the hours they
  touched are checked like every hour changed since its last check.

No run speaks for an hour that is not closed (its end is after now): such an hour asked for is
refused, and one touched by clicks waits for the first run after its end. An hour without clicks
counts (state `empty`) when a run covers it and its day has clicks, or when it lies in a quiet gap
of at most `QUIET_GAP_MAX_HOURS` between two hours with clicks; a day with no clicks at all gets
no rows.
"""


def epoch_hour_key(epoch_hour: int) -> str:
    """Hours since 1970 -> `2017-10-01T03`."""
    return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(hours=epoch_hour)).strftime(HOUR_LAYOUT)


def epoch_hour(key: str) -> int:
    """`2017-10-01T03` -> hours since 1970."""
    return int(datetime.strptime(key, HOUR_LAYOUT).replace(tzinfo=UTC).timestamp()) // 3600


def hour_key(hour: Hour) -> str:
    """("2017-10-01", 3) -> `2017-10-01T03`."""
    return f"{hour[0]}T{hour[1]:02d}"


def parse_hour_key(key: str) -> Hour:
    """`2017-10-01T03` -> ("2017-10-01", 3); ValueError for anything else."""
    moment = datetime.strptime(key, HOUR_LAYOUT)
    return moment.strftime(DAY_LAYOUT), moment.hour


def hours_of_day(day: str) -> list[Hour]:
    """The 24 hours of a UTC day (`2017-10-01`); ValueError when it is not a day."""
    datetime.strptime(day, DAY_LAYOUT)
    return [(day, hour) for hour in range(24)]


def hour_start(hour: Hour) -> datetime:
    """("2017-10-01", 3) -> 2017-10-01 03:00 UTC."""
    return datetime.strptime(hour_key(hour), HOUR_LAYOUT).replace(tzinfo=UTC)


def hour_of(moment: datetime) -> Hour:
    """The hour a UTC moment falls in."""
    return moment.strftime(DAY_LAYOUT), moment.hour


def parse_moment(text: str) -> datetime:
    """The UTC hour of a key or timestamp (`2017-10-01T05`, `2017-10-01T05:30:00+02:00`, ...), as the
    moment it starts; ValueError for anything else. A time without a zone is UTC."""
    for layout in MOMENT_LAYOUTS:
        try:
            moment = datetime.strptime(text, layout)
        except ValueError:
            continue
        moment = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
        return moment.replace(minute=0, second=0, microsecond=0)
    raise ValueError(f"not an hour: {text!r} (expected e.g. 2017-10-01T05)")


def hours_from(first: datetime, last: datetime) -> list[Hour]:
    """Every hour from the one `first` falls in to the one `last` falls in; ValueError when `last` is earlier."""
    if last < first:
        raise ValueError(f"{last:{HOUR_LAYOUT}} is before {first:{HOUR_LAYOUT}}")
    hours, moment = [], first.replace(minute=0, second=0, microsecond=0)
    while moment <= last:
        hours.append(hour_of(moment))
        moment += timedelta(hours=1)
    return hours


def hours_in_range(first: str, last: str) -> list[Hour]:
    """Every hour from key `first` to key `last` (like 2017-10-01T05); ValueError for a bad key or order."""
    return hours_from(datetime.strptime(first, HOUR_LAYOUT), datetime.strptime(last, HOUR_LAYOUT))


def partition_hour(name: str) -> Hour:
    """The hour of an hourly partition's name, `dt=2017-10-01/hour=3` -> ("2017-10-01", 3);
    ("", 0) for a partition without them (so any table's partitions sort by it)."""
    values = dict(part.split("=", 1) for part in name.split("/") if part)
    return values.get("dt", ""), int(values.get("hour", 0))


def hour_partition(hour: Hour) -> str:
    """The name of an hourly partition: ("2017-10-01", 3) -> `dt=2017-10-01/hour=3`."""
    return f"dt={hour[0]}/hour={hour[1]}"


def session_window(
    session_hours: Iterable[Hour], partitions: Iterable[str], max_session_seconds: float, tolerance_seconds: float
) -> list[str]:
    """The hourly partitions that may hold clicks of sessions started in `session_hours`: a click
    lies from `tolerance_seconds` before its session's start to `max_session_seconds` after it (the
    event-time rules set the others aside), so from the first hour's start minus the tolerance to
    the end of the last hour plus the longest session. Later data never widens it."""
    starts = sorted(hour_start(hour) for hour in session_hours)
    if not starts:
        return []
    earliest = starts[0] - timedelta(seconds=tolerance_seconds)
    latest = starts[-1] + timedelta(hours=1, seconds=max_session_seconds)
    return [
        name
        for name in partitions
        if (start := hour_start(partition_hour(name))) + timedelta(hours=1) > earliest and start < latest
    ]


def day_partition(day: str) -> str:
    """The name of a daily partition: `2017-10-01` -> `dt=2017-10-01`."""
    return f"dt={day}"


def partition_key(name: str) -> str:
    """`dt=2017-10-01/hour=3` -> `2017-10-01T03`."""
    return hour_key(partition_hour(name))


def hour_end(hour: Hour) -> datetime:
    """("2017-10-01", 3) -> 2017-10-01 04:00 UTC, the moment the hour closes."""
    return hour_start(hour) + timedelta(hours=1)


def is_closed(hour: Hour, now: datetime) -> bool:
    """Whether the hour has ended by `now` (a UTC moment): only then may a run speak for it."""
    return hour_end(hour) <= now


def interval_hours(start: datetime, end: datetime) -> list[Hour]:
    """The hours of a data interval `[start, end)`: those starting at or after `start` and before
    `end` (none for an empty interval)."""
    if end <= start:
        return []
    return hours_from(start, end - timedelta(microseconds=1))


def quiet_hours(hours_with_clicks: Iterable[Hour], max_gap: int) -> set[Hour]:
    """The hours without clicks that lie between two hours with clicks at most `max_gap` empty hours
    apart: a quiet spell, not missing data (a longer gap is not guessed at)."""
    epochs = sorted({epoch_hour(hour_key(hour)) for hour in hours_with_clicks})
    quiet: set[Hour] = set()
    for before, after in itertools.pairwise(epochs):
        if 1 < after - before <= max_gap + 1:
            quiet.update(parse_hour_key(epoch_hour_key(gap)) for gap in range(before + 1, after))
    return quiet


def hour_spans(hours: Iterable[Hour]) -> list[tuple[Hour, Hour]]:
    """Hours grouped into runs of consecutive hours, as (first, last) pairs in order."""
    spans: list[tuple[Hour, Hour]] = []
    for epoch in sorted({epoch_hour(hour_key(hour)) for hour in hours}):
        hour = parse_hour_key(epoch_hour_key(epoch))
        if spans and epoch_hour(hour_key(spans[-1][1])) == epoch - 1:
            spans[-1] = (spans[-1][0], hour)
        else:
            spans.append((hour, hour))
    return spans
