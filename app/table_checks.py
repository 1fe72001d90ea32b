"""The tables' check: fail loudly when the Hive tables disagree with each other or with what was published.

Which hours (`hours_to_check`, by `app.hours.RUN_HOURS_RULE`): those asked (a run's range) in days
with clicks, every hour whose aggregate partitions moved since its last check or that was never
checked (found from the metastore's locations, no data read), and the quiet hours not checked yet;
every hour when none are asked (by hand); of all these only the closed ones. Three checks, all on
counts the tables must agree on:
1. For each of those hours: the clicks of `article_hourly`, `category_hourly` and
   `context_hourly` each add up to the rows of that hour in `raw_clicks`.
2. For each of those hours: `raw_clicks` holds as many rows of the ledger's click files as the
   ledger says were published in that hour (per-hour counts the producer keeps), once those files
   are drained.
3. For each file in the producer's ledger with clicks in those hours, whose records the stream has
   passed (its offsets are below the checkpoint's): the raw table holds exactly the ledger's row
   count for that file and version, at offsets inside the ranges the ledger recorded, and the
   topic's end is past them.
Each hour checked gets its row in `hour_reconciliation` (`app/reconciliation.py`).

The tables are read as any reader reads them: partition locations from the Hive Metastore, rows
from the Parquet files (footers for the counts, four columns of the raw partitions holding the
checked files' clicks), so the check takes seconds and no Spark. The hourly DAG's `check_tables`
task runs it; `python -m app.table_checks [--from 2017-10-01T00 --to 2017-10-01T05]` runs it by
hand (exit 1 on a disagreement). The comparisons (`find_disagreements`, `state_of`) are plain
Python over the counts.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from app.hours import (
    Hour,
    day_partition,
    hour_key,
    hours_in_range,
    is_closed,
    parse_hour_key,
    partition_hour,
    quiet_hours,
)
from app.producer.ledger import LedgerEntry
from app.reconciliation import (
    COUNTS_AS_BALANCED,
    HourCounts,
    ReconciliationTable,
    balanced_day,
    row_of,
    rows_of_days,
    state_of,
    versions_of,
)
from app.settings import Settings
from app.table_catalog import aggregates_adding_up_to_raw_clicks, raw_table_of_ledger_kind

log = logging.getLogger(__name__)

Offsets = dict[str, dict[int, int]]
AGGREGATES = aggregates_adding_up_to_raw_clicks()
RAW_TABLE_OF_KIND = raw_table_of_ledger_kind()


@dataclass(frozen=True)
class Landed:
    """What the raw table holds of one file version in one Kafka partition."""

    rows: int
    first_offset: int
    last_offset: int


LandedFiles = Mapping[tuple[str, int], Mapping[int, Landed]]  # (file, version) -> partition -> landed


def find_disagreements(
    raw_per_hour: Mapping[Hour, int],
    aggregate_clicks_per_hour: Mapping[str, Mapping[Hour, int]],
    ledger: Iterable[LedgerEntry],
    landed: Mapping[str, LandedFiles],
    checkpoint: Offsets,
    topic_ends: Offsets,
) -> list[str]:
    """Every disagreement, one sentence each; empty when the tables are consistent."""
    problems = []
    for table, per_hour in aggregate_clicks_per_hour.items():
        for dt, hour in sorted(set(raw_per_hour) | set(per_hour)):
            raw, summed = raw_per_hour.get((dt, hour), 0), per_hour.get((dt, hour), 0)
            if raw != summed:
                problems.append(f"{dt} hour {hour}: raw_clicks has {raw} rows, {table} adds up to {summed} clicks")
    for entry in ledger:
        ranges = {int(partition): (first, last) for partition, (first, last) in entry.offsets.items()}
        drained = all(checkpoint.get(entry.topic, {}).get(p, 0) > last for p, (_, last) in ranges.items())
        if not drained:
            continue  # the stream has not passed this file yet: not a disagreement
        what = f"{entry.file} (version {entry.version}, topic {entry.topic})"
        per_partition = landed.get(entry.kind, {}).get((entry.file, entry.version), {})
        rows = sum(part.rows for part in per_partition.values())
        if rows != entry.rows:
            problems.append(f"{what}: the ledger says {entry.rows} rows were published, the raw table holds {rows}")
        for partition, part in per_partition.items():
            first, last = ranges.get(partition, (None, None))
            if first is None or last is None or part.first_offset < first or part.last_offset > last:
                problems.append(
                    f"{what}: partition {partition} rows at offsets {part.first_offset}..{part.last_offset}, "
                    f"outside the published range {first}..{last}"
                )
        for partition, (_, last) in ranges.items():
            end = topic_ends.get(entry.topic, {}).get(partition)
            if end is None or end <= last:
                problems.append(f"{what}: partition {partition} ends at {end}, before the published offset {last}")
    return problems


@dataclass
class CheckReport:
    scope: str
    raw_clicks: int
    files_checked: int
    problems: list[str] = field(default_factory=list)
    states: dict[Hour, str] = field(default_factory=dict)  # each hour checked: its reconciliation state
    days_complete_before: set[str] = field(default_factory=set)  # days whose 24 hours were balanced before

    @property
    def balanced_hours(self) -> list[Hour]:
        """The hours checked balanced or empty: what a run announces."""
        return sorted(hour for hour, state in self.states.items() if state in COUNTS_AS_BALANCED)


def drained(entry: LedgerEntry, checkpoint: Offsets) -> bool:
    """Whether the stream has passed every record of a ledger entry."""
    return all(checkpoint.get(entry.topic, {}).get(int(p), 0) > last for p, (_, last) in entry.offsets.items())


def hours_to_check(
    asked: Iterable[Hour] | None,
    current_versions: Mapping[Hour, str],
    reconciled: Mapping[Hour, Mapping[str, object]],
    hours_with_clicks: Iterable[Hour],
    now: datetime,
    max_quiet_gap: int,
) -> set[Hour]:
    """The hours a check speaks for (`app.hours.RUN_HOURS_RULE`), all of them closed by `now`:
    - every hour the tables or the reconciliation know when none are asked; else the hours asked
      and every hour whose aggregates changed since its last reconciliation (recomputed by the
      stream or another run) or that was never reconciled, found from the metastore's locations;
    - of the hours asked, only those of days with clicks (a day with none gets no rows);
    - every hour of a quiet gap (no clicks, between two hours with clicks at most `max_quiet_gap`
      apart) in a day with clicks, not reconciled yet: it is checked, and found empty."""
    clicked = set(hours_with_clicks)
    days_with_clicks = {day for day, _ in clicked}
    if asked is None:
        hours = set(current_versions) | set(reconciled)
    else:
        changed = {
            hour
            for hour, versions in current_versions.items()
            if hour not in reconciled or reconciled[hour]["aggregate_versions"] != versions
        }
        hours = {hour for hour in asked if hour[0] in days_with_clicks} | changed
    hours |= {hour for hour in quiet_hours(clicked, max_quiet_gap) - set(reconciled) if hour[0] in days_with_clicks}
    return {hour for hour in hours if is_closed(hour, now)}


def check_tables(
    settings: Settings, hours: list[Hour] | None = None, record: bool = True, now: datetime | None = None
) -> CheckReport:
    """Check `hours` (every hour when None), the hours changed since their last check and the quiet
    hours not checked yet, of those closed by `now`: read their counts (offsets first: the tables
    read afterwards hold at least what the checkpoint passed), compare them, and, with `record`,
    write their rows of `hour_reconciliation`."""
    import pyarrow as pa

    from app.checkpoint import committed_offsets
    from app.kafka_io import end_offsets
    from app.parquet_folders import in_parallel, parquet_rows, read_columns
    from app.pipeline_view import HiveCatalog
    from app.producer.ledger import read_ledger

    checkpoint = committed_offsets(settings)
    ledger = [entry for entry in read_ledger(settings).values() if entry.kind in RAW_TABLE_OF_KIND]
    topic_ends = end_offsets(settings, [settings.kafka_topic, settings.kafka_metadata_topic])
    locations = HiveCatalog(settings).locations()
    reconciliation = ReconciliationTable(settings) if "hour_reconciliation" in locations else None
    reconciled = rows_of_days(locations.get("hour_reconciliation", {}))

    def hourly(table: str) -> dict[Hour, str]:
        return {partition_hour(name): location for name, location in locations.get(table, {}).items()}

    raw_all = hourly("raw_clicks")
    aggregate_all = {table: hourly(table) for table in AGGREGATES}
    current_versions = {
        hour: versions_of({table: aggregate_all[table].get(hour) for table in AGGREGATES})
        for hour in set(raw_all).union(*aggregate_all.values())
    }
    published_hours = {parse_hour_key(key) for entry in ledger for key, rows in (entry.hours or {}).items() if rows}
    scope = sorted(
        hours_to_check(
            hours,
            current_versions,
            reconciled,
            set(raw_all) | published_hours,
            now or datetime.now(UTC),
            settings.quiet_gap_max_hours,
        )
    )
    wanted = set(scope)

    raw = {hour: location for hour, location in raw_all.items() if hour in wanted}
    raw_per_hour = dict(zip(raw, in_parallel(parquet_rows, list(raw.values())), strict=True))
    aggregates = {}
    for table in AGGREGATES:
        partitions = {hour: location for hour, location in aggregate_all[table].items() if hour in wanted}
        sums = in_parallel(
            lambda location: sum(read_columns(location, ["clicks"])["clicks"]), list(partitions.values())
        )
        aggregates[table] = dict(zip(partitions, sums, strict=True))

    # the ledger's click files with clicks in these hours (all of them for an entry without per-hour
    # counts), and every raw partition holding their clicks: what the per-file check reads
    keys = {hour_key(hour) for hour in scope}
    click_entries = [entry for entry in ledger if entry.kind == "clicks"]
    checked_clicks = [e for e in click_entries if e.hours is None or keys & set(e.hours) or hours is None]
    erased_all = hourly("erased_clicks")
    if any(entry.hours is None for entry in checked_clicks):
        raw_to_read, erased_to_read = raw_all, erased_all
    else:
        needed = {parse_hour_key(key) for entry in checked_clicks for key in entry.hours or {}} | wanted
        raw_to_read = {hour: location for hour, location in raw_all.items() if hour in needed}
        erased_to_read = {hour: location for hour, location in erased_all.items() if hour in needed}
    columns = ["source_file", "file_version", "kafka_partition", "kafka_offset"]
    ledger_files = {(entry.file, entry.version) for entry in click_entries}
    landed: dict[str, dict[tuple[str, int], dict[int, Landed]]] = {}
    raw_from_ledger: dict[Hour, int] = {}
    erased_from_ledger: dict[Hour, int] = {}
    for kind, table in RAW_TABLE_OF_KIND.items():
        # raw_articles is partitioned by arrival day and small: read whole
        sources: dict[Any, str] = dict(raw_to_read) if kind == "clicks" else dict(locations.get(table, {}))
        found = in_parallel(lambda location: _read_table(location, columns), list(sources.values()))
        read = [(where, rows) for where, rows in zip(sources, found, strict=True) if rows is not None]
        tables = [rows for _, rows in read]
        if kind == "clicks":
            for hour, rows in read:
                if hour in wanted:
                    raw_from_ledger[hour] = _count_from_files(rows, ledger_files)
            # clicks erased (removed, or refused as a forgotten user's) still came from their files:
            # each counted once by its Kafka coordinates (an erasure run again after a crash may
            # have recorded a click twice)
            found = in_parallel(lambda location: _read_table(location, columns), list(erased_to_read.values()))
            for hour, rows in zip(erased_to_read, found, strict=True):
                if rows is None:
                    continue
                distinct = rows.group_by(columns).aggregate([])
                tables.append(distinct)
                if hour in wanted:
                    erased_from_ledger[hour] = _count_from_files(distinct, ledger_files)
        if not tables:
            continue
        summary = (
            pa.concat_tables(tables)
            .group_by(columns[:3])
            .aggregate([("kafka_offset", "count"), ("kafka_offset", "min"), ("kafka_offset", "max")])
        )
        per_file = landed.setdefault(kind, {})
        for row in summary.to_pylist():
            per_file.setdefault((str(row["source_file"]), int(row["file_version"])), {})[
                int(row["kafka_partition"])
            ] = Landed(int(row["kafka_offset_count"]), int(row["kafka_offset_min"]), int(row["kafka_offset_max"]))

    quarantined = quarantined_per_hour(list(locations.get("quarantine", {}).values()))
    checked = [entry for entry in ledger if entry.kind != "clicks"] + checked_clicks
    problems = find_disagreements(raw_per_hour, aggregates, checked, landed, checkpoint, topic_ends)
    states = {}
    counted: list[HourCounts] = []
    for hour in scope:
        counts = replace(
            hour_counts(
                hour,
                click_entries,
                checkpoint,
                raw_per_hour,
                raw_from_ledger,
                aggregates,
                current_versions,
                quarantined,
            ),
            erased_from_ledger=erased_from_ledger.get(hour, 0),
        )
        counted.append(counts)
        states[hour] = state_of(counts)
        landed_clicks = counts.raw_from_ledger + counts.erased_from_ledger
        if counts.published is not None and not counts.landing and counts.published != landed_clicks:
            problems.append(f"{hour[0]} hour {hour[1]}: {states[hour]}")
    complete_before = {day for day in {hour[0] for hour in scope} if not balanced_day(reconciled, day)}
    if record and reconciliation is not None and counted:
        checked_at = datetime.now(UTC)
        reconciliation.write({counts.hour: row_of(counts, checked_at) for counts in counted})
    described = "every hour" if hours is None else f"{len(hours)} hour(s) asked"
    if scope:
        described += f", {len(scope)} checked from {hour_key(scope[0])} to {hour_key(scope[-1])}"
    return CheckReport(
        scope=described,
        raw_clicks=sum(raw_per_hour.values()),
        files_checked=len(checked),
        problems=problems,
        states=states,
        days_complete_before=complete_before,
    )


def check_day(settings: Settings, day: str) -> list[str]:
    """The daily tables of `day` against its raw clicks: each adds up to the day's raw rows (every
    disagreement, one sentence each)."""
    from app.parquet_folders import in_parallel, parquet_rows, read_columns
    from app.pipeline_view import HiveCatalog
    from app.table_catalog import daily_tables

    locations = HiveCatalog(settings).locations()
    raw = [location for name, location in locations.get("raw_clicks", {}).items() if partition_hour(name)[0] == day]
    raw_rows = sum(in_parallel(parquet_rows, raw))
    problems = []
    for table in daily_tables():
        location = locations.get(table.name, {}).get(day_partition(day))
        summed = sum(read_columns(location, ["clicks"])["clicks"]) if location else 0
        if summed != raw_rows:
            problems.append(f"{day}: raw_clicks has {raw_rows} rows, {table.name} adds up to {summed} clicks")
    return problems


def hour_counts(
    hour: Hour,
    click_entries: list[LedgerEntry],
    checkpoint: Offsets,
    raw_per_hour: Mapping[Hour, int],
    raw_from_ledger: Mapping[Hour, int],
    aggregates: Mapping[str, Mapping[Hour, int]],
    current_versions: Mapping[Hour, str],
    quarantined: Mapping[str, int],
) -> HourCounts:
    """One hour's figures from the ledger and the tables' counts."""
    key = hour_key(hour)
    published: int | None = 0
    rejected = 0
    landing = []
    for entry in click_entries:
        if entry.hours is None:
            if drained(entry, checkpoint):
                published = None  # published before the ledger counted hours: unknown
            continue
        rejected += (entry.rejected_hours or {}).get(key, 0)
        if key not in entry.hours:
            continue
        if not drained(entry, checkpoint):
            landing.append(entry.file)
        elif published is not None:
            published += entry.hours[key]
    return HourCounts(
        hour=hour,
        published=published,
        rejected=rejected,
        quarantined=quarantined.get(key, 0),
        raw_clicks=raw_per_hour.get(hour, 0),
        raw_from_ledger=raw_from_ledger.get(hour, 0),
        aggregate_clicks={table: per_hour.get(hour, 0) for table, per_hour in aggregates.items()},
        aggregate_versions=current_versions.get(hour, versions_of({})),
        landing=tuple(sorted(landing)),
    )


def quarantined_per_hour(locations: list[str]) -> dict[str, int]:
    """Quarantined records per click hour (`2017-10-01T03`), from the quarantine table's `click_hour`
    (one small column; files written before it existed have none). The quarantine holds only what
    failed, so reading all of it stays small."""
    from app.parquet_folders import column_names, in_parallel, parquet_files, read_file_columns

    def hours_in(location: str) -> list[str]:
        found = []
        for file in parquet_files(location):
            if "click_hour" in column_names(file):
                found += [h for h in read_file_columns(file, ["click_hour"]).column(0).to_pylist() if h]
        return found

    counts: dict[str, int] = {}
    for hours in in_parallel(hours_in, locations):
        for hour in hours:
            counts[hour] = counts.get(hour, 0) + 1
    return counts


def _read_table(location: str, columns: list[str]) -> Any:
    """Those columns of a folder's Parquet files as one Arrow table; None for a folder without any."""
    import pyarrow as pa

    from app.parquet_folders import parquet_files, read_file_columns

    files = parquet_files(location)
    return pa.concat_tables([read_file_columns(file, columns) for file in files]) if files else None


def _count_from_files(rows: Any, files: set[tuple[str, int]]) -> int:
    """How many of those rows came from one of those (file, version)s."""
    import pyarrow as pa
    import pyarrow.compute as pc

    return int(pc.sum(pc.cast(_from_files(rows, files), pa.int64())).as_py() or 0)


def _from_files(rows: Any, files: set[tuple[str, int]]) -> Any:
    """A boolean column: whether each raw row came from one of those (file, version)s."""
    import pyarrow as pa
    import pyarrow.compute as pc

    names = pc.binary_join_element_wise(
        pc.cast(rows.column("source_file"), pa.string()),
        pc.cast(rows.column("file_version"), pa.string()),
        "\x00",
    )
    wanted = pa.array([f"{name}\x00{version}" for name, version in sorted(files)], pa.string())
    return pc.fill_null(pc.is_in(names, value_set=wanted), False)


def main(argv: list[str] | None = None) -> int:
    from app.settings import load_settings

    parser = argparse.ArgumentParser(prog="python -m app.table_checks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--from", dest="first", help="first UTC hour, like 2017-10-01T00")
    parser.add_argument("--to", dest="last", help="last UTC hour, inclusive")
    args = parser.parse_args(argv)
    if (args.first is None) != (args.last is None):
        parser.error("--from and --to go together")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        hours = hours_in_range(args.first, args.last) if args.first else None
    except ValueError as error:
        parser.error(f"--from/--to: {error} (expected UTC hours like 2017-10-01T05)")
    report = check_tables(load_settings(), hours)
    for problem in report.problems:
        print(f"disagreement: {problem}")
    print(f"{len(report.problems)} disagreement(s); {report.scope}, {report.raw_clicks} raw clicks, "
          f"{report.files_checked} ledger file(s)")  # fmt: skip
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
