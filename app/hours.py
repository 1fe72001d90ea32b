"""A UTC hour of clicks: its forms and how they convert.

Three forms are in use: an hour *key* (`2017-10-01T03`, the text users type, Airflow's asset
partition key and the ledger's per-hour counts), a table *hour* (`("2017-10-01", 3)`, the
`dt`/`hour` partition values of the hourly tables), and an *epoch hour* (hours since 1970, what
the producer computes from a click's millisecond timestamp). A day is `2017-10-01`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

MS_PER_HOUR = 3_600_000
HOUR_LAYOUT = "%Y-%m-%dT%H"
DAY_LAYOUT = "%Y-%m-%d"

Hour = tuple[str, int]  # (dt, hour of day): an hourly table's partition values


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
