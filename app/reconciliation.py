"""The per-hour reconciliation: one row per UTC hour in `hour_reconciliation`, from file to aggregate.

`check_tables` fills it. For each hour it checks, it writes what the producer's ledger says was
published (click files whose records the stream has passed; per-hour counts the producer keeps in
the ledger), what the producer set aside for its click time, what `raw_clicks` holds (and of that,
what came from those ledger files), how many of those files' clicks were erased (`erased_clicks`:
removed for an erasure request, or refused as a forgotten user's; the published clicks of an hour
equal its raw clicks from the ledger's files plus those), each aggregate's click sum, the aggregate
versions it read, and the hour's state: `balanced`, `empty` (checked, and nothing at all came for
it: a quiet hour, which counts as balanced), `landing` (a file with clicks of the hour is not drained yet), or the first
disagreement in words. The pipeline view draws the rows as a strip of hours, and
`clickstream_daily` builds a day only when its 24 rows are balanced or empty. When it has built a
day, it records in each of the day's rows the version of the hour it built from (`day_built_from`,
the hour's `aggregate_versions` then, and `day_built_at`): a day whose rows all say the versions
they hold now is up to date; any other complete day is due (`days_due`), which
`clickstream_catch_up` announces.

The table is partitioned by `dt` with one Parquet file per day holding that day's hours. An hour's
row is replaced by rewriting its day's file under a lock (`<table>/_lock`) and renaming the new file
over the old one: a reader sees the day before or after, and two checks of the same day never lose
each other's hours. Reading the whole table is one small file per day: a hundred times the Globo
set (300 days) is 300 files.

A record Spark quarantines is counted under the hour of its click when its click time is readable
(the quarantine table's `click_hour`); one that did not parse at all has no hour and is counted only
in the quarantine table.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from app.hours import Hour, day_partition, hour_key
from app.locks import pipeline_lock
from app.metastore import Metastore
from app.settings import Settings
from app.storage import Location
from app.table_catalog import BY_NAME, aggregates_adding_up_to_raw_clicks

log = logging.getLogger(__name__)

TABLE = "hour_reconciliation"
BALANCED = "balanced"
EMPTY = "empty"  # checked, and nothing came for it: balanced, with no clicks
COUNTS_AS_BALANCED = (BALANCED, EMPTY)
LANDING = "landing"
BUILT_COLUMNS = ("day_built_from", "day_built_at")  # kept when an hour's row is checked again
DAY_FILE = "hours.parquet"
AGGREGATES = aggregates_adding_up_to_raw_clicks()
_ARROW_TYPES = {"int": "int32", "bigint": "int64", "string": "string"}


@dataclass(frozen=True)
class HourCounts:
    """What one hour's check found."""

    hour: Hour
    published: int | None  # per the ledger, of drained click files; None: a drained file has no per-hour counts
    rejected: int  # set aside by the producer for their click time
    quarantined: int  # set aside by Spark (records from other producers) with a click time in this hour
    raw_clicks: int  # rows of the hour's raw partition
    raw_from_ledger: int  # of those, rows from click files in the ledger (others came from other producers)
    aggregate_clicks: Mapping[str, int]  # aggregate table -> its click sum for the hour
    aggregate_versions: str  # the aggregate partitions read (their folders' version ids)
    landing: tuple[str, ...] = field(default=())  # files with clicks of this hour not drained yet
    erased_from_ledger: int = 0  # clicks of ledger files removed for an erasure or refused as a forgotten user's


def state_of(counts: HourCounts) -> str:
    """`balanced`, `empty`, `landing: ...`, or the hour's first disagreement in words."""
    if counts.landing:
        return f"{LANDING}: {', '.join(counts.landing[:3])}{' ...' if len(counts.landing) > 3 else ''} not drained yet"
    if counts.published is not None and counts.published != counts.raw_from_ledger + counts.erased_from_ledger:
        erased = f" and {counts.erased_from_ledger} were erased" if counts.erased_from_ledger else ""
        return (
            f"the ledger published {counts.published} click(s) of this hour, "
            f"raw_clicks holds {counts.raw_from_ledger} of its files{erased}"
        )
    for table in AGGREGATES:
        summed = counts.aggregate_clicks.get(table, 0)
        if summed != counts.raw_clicks:
            return f"raw_clicks holds {counts.raw_clicks} row(s), {table} adds up to {summed} click(s)"
    nothing = (counts.published or 0, counts.rejected, counts.quarantined, counts.raw_clicks, counts.erased_from_ledger)
    return EMPTY if not any(nothing) and not any(counts.aggregate_clicks.values()) else BALANCED


def row_of(counts: HourCounts, checked_at: datetime) -> dict[str, Any]:
    return {
        "hour": counts.hour[1],
        "published": counts.published,
        "rejected": counts.rejected,
        "quarantined": counts.quarantined,
        "raw_clicks": counts.raw_clicks,
        **{f"{table}_clicks": counts.aggregate_clicks.get(table, 0) for table in AGGREGATES},
        "aggregate_versions": counts.aggregate_versions,
        "state": state_of(counts),
        "checked_at": checked_at,
        "erased": counts.erased_from_ledger,
    }


def version_of(location: str) -> str:
    """The version id of a replaced partition's folder (`.../versions/<id>/dt=.../hour=...`), or the
    folder itself for one written otherwise."""
    parts = location.split("/")
    return parts[parts.index("versions") + 1] if "versions" in parts[:-1] else location


def versions_of(per_table: Mapping[str, str | None]) -> str:
    """The aggregate versions of an hour as one text, in the catalogue's order (`-`: no partition)."""
    return ",".join(f"{table}:{version_of(per_table.get(table) or '-')}" for table in AGGREGATES)


def arrow_schema() -> Any:
    import pyarrow as pa

    fields = []
    for name, kind in BY_NAME[TABLE].columns:
        if kind == "timestamp":
            fields.append(pa.field(name, pa.timestamp("us", tz="UTC")))
        else:
            fields.append(pa.field(name, pa.type_for_alias(_ARROW_TYPES[kind])))
    return pa.schema(fields)


class ReconciliationTable:
    """Reads and writes `hour_reconciliation` through the metastore and Parquet, without Spark."""

    def __init__(self, settings: Settings, metastore: Metastore | None = None) -> None:
        self.metastore = metastore or Metastore(settings.hive_metastore_uri, settings.hive_database)
        self.settings = settings

    def exists(self) -> bool:
        return TABLE in self.metastore.tables()

    def read(self, days: Iterable[str] | None = None) -> dict[Hour, dict[str, Any]]:
        """The rows of those days (every day when None), by hour."""
        names = None if days is None else [day_partition(day) for day in sorted(set(days))]
        return rows_of_days(self.metastore.partition_locations(TABLE, names))

    def read_if_exists(self, days: Iterable[str] | None = None) -> dict[Hour, dict[str, Any]]:
        """As `read`; no rows while the table does not exist yet (no hour was ever checked)."""
        return self.read(days) if self.exists() else {}

    def write(self, rows: Mapping[Hour, dict[str, Any]]) -> None:
        """Replace those hours' rows (the other hours of their days stay; a replaced hour keeps the
        record of the version its day was built from)."""
        by_day: dict[str, dict[int, dict[str, Any]]] = {}
        for (day, hour), row in rows.items():
            by_day.setdefault(day, {})[hour] = row

        def replacing(hours: dict[int, dict[str, Any]]) -> DayUpdate:
            def update(old: list[dict[str, Any]]) -> list[dict[str, Any]]:
                before = {int(row["hour"]): row for row in old}
                renewed = {
                    hour: {**{column: before.get(hour, {}).get(column) for column in BUILT_COLUMNS}, **row}
                    for hour, row in hours.items()
                }
                return [row for hour, row in before.items() if hour not in renewed] + list(renewed.values())

            return update

        self._rewrite_days({day: replacing(hours) for day, hours in by_day.items()})
        log.info("%s: wrote %s hour(s) of %s day(s)", TABLE, len(rows), len(by_day))

    def mark_day_built(self, day: str, versions: Mapping[int, str], built_at: datetime) -> None:
        """Record in the day's rows that its daily tables were built from those versions of its hours
        (hour of the day -> the `aggregate_versions` read before the build)."""

        def update(old: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [
                {**row, "day_built_from": versions[int(row["hour"])], "day_built_at": built_at}
                if int(row["hour"]) in versions
                else row
                for row in old
            ]

        self._rewrite_days({day: update})
        log.info("%s: %s built from %s hour version(s)", TABLE, day, len(versions))

    def _rewrite_days(self, updates: Mapping[str, DayUpdate]) -> None:
        """Rewrite each day's file with `update(its rows)`, one writer at a time (each keeps the
        others' hours), renaming the new file over the old (readers see the day before or after)."""
        import pyarrow as pa

        from app.parquet_folders import read_file_columns, write_file

        root = Location.parse(self.metastore.table_location(TABLE))
        schema = arrow_schema()
        with pipeline_lock(self.settings, root, "_lock"):
            existing = self.metastore.partition_locations(TABLE, [day_partition(day) for day in updates])
            new = {}
            for day, update in sorted(updates.items()):
                known = existing.get(day_partition(day))
                folder = Location.parse(known) if known else root / day_partition(day)
                path = folder / DAY_FILE
                old = read_file_columns(path).to_pylist() if path.exists() else []
                rows = sorted(update(old), key=lambda row: int(row["hour"]))
                write_file(pa.Table.from_pylist(rows, schema=schema), path)
                if day_partition(day) not in existing:
                    new[day_partition(day)] = str(folder)
            self.metastore.add_partitions(TABLE, new)


DayUpdate = Callable[[list[dict[str, Any]]], list[dict[str, Any]]]  # a day's rows -> its new rows


def rows_of_days(locations: Mapping[str, str], columns: list[str] | None = None) -> dict[Hour, dict[str, Any]]:
    """The rows of the table's day folders (partition name `dt=...` -> folder), by hour, in hour
    order; `columns` of them (every column when None). The day files are read at once."""
    from app.parquet_folders import column_names, in_parallel, read_file_columns

    def read_day(location: str) -> list[dict[str, Any]]:
        path = Location.parse(location) / DAY_FILE
        if not path.exists():
            return []
        present = column_names(path)  # a file written before a column was added lacks it
        rows = read_file_columns(path, [c for c in columns or present if c in present]).to_pylist()
        return [{**dict.fromkeys(columns or ()), **row} for row in rows]

    rows: dict[Hour, dict[str, Any]] = {}
    for name, day_rows in zip(locations, in_parallel(read_day, list(locations.values())), strict=True):
        day = name.removeprefix("dt=")
        for row in day_rows:
            rows[(day, int(row["hour"]))] = row
    return dict(sorted(rows.items()))


NEVER_CHECKED = "never checked"


def balanced_day(rows: Mapping[Hour, Mapping[str, Any]], day: str) -> list[str]:
    """The hours of `day` that are neither balanced nor empty, each with its state
    ("2017-10-01T05: never checked" for an hour without a row); empty when all 24 count."""
    problems = []
    for hour in range(24):
        row = rows.get((day, hour))
        state = NEVER_CHECKED if row is None else str(row["state"])
        if state not in COUNTS_AS_BALANCED:
            problems.append(f"{hour_key((day, hour))}: {state}")
    return problems


def built_from_current(rows: Mapping[Hour, Mapping[str, Any]], day: str) -> bool:
    """Whether the day's daily tables were built from the versions its 24 hours hold now."""
    return all(
        (row := rows.get((day, hour))) is not None and row.get("day_built_from") == row["aggregate_versions"]
        for hour in range(24)
    )


def days_due(rows: Mapping[Hour, Mapping[str, Any]]) -> list[str]:
    """The days whose 24 hours are all balanced or empty and whose daily tables are missing or were
    built from other versions of their hours: what a catch-up announces."""
    days = sorted({day for day, _ in rows})
    return [day for day in days if not balanced_day(rows, day) and not built_from_current(rows, day)]


def now() -> datetime:
    return datetime.now(UTC)
