"""The tables' check: fail loudly when the Hive tables disagree with each other or with what was published.

Two checks, both on counts every table must agree on:
1. For each hour of the range (every hour in the tables when no range is given): the clicks of
   `article_hourly`, `category_hourly` and `context_hourly` each add up to the rows of that hour
   in `raw_clicks`.
2. For each file in the producer's ledger whose records the stream has passed (its offsets are
   below the checkpoint's): the raw table holds exactly the ledger's row count for that file and
   version, at offsets inside the ranges the ledger recorded, and the topic's end is past them.

The tables are read as any reader reads them: partition locations from the Hive Metastore, rows
from the Parquet files (footers for the counts, four columns for the per-file check), so the
check takes seconds and no Spark. The hourly DAG's `check_tables` task runs it;
`python -m app.table_checks [--from 2017-10-01T00 --to 2017-10-01T05]` runs it by hand (exit 1
on a disagreement). The comparison (`find_disagreements`) is plain Python over the counts.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from app.orchestration import HOUR_LAYOUT
from app.producer.ledger import LedgerEntry
from app.settings import Settings
from app.table_catalog import aggregates_adding_up_to_raw_clicks, raw_table_of_ledger_kind

log = logging.getLogger(__name__)

Hour = tuple[str, int]
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


def hours_in_range(first: str, last: str) -> list[Hour]:
    """Every UTC hour from `first` to `last` (like 2017-10-01T05), both included."""
    start, end = datetime.strptime(first, HOUR_LAYOUT), datetime.strptime(last, HOUR_LAYOUT)
    if end < start:
        raise ValueError(f"{last} is before {first}")
    hours = []
    while start <= end:
        hours.append((start.strftime("%Y-%m-%d"), start.hour))
        start += timedelta(hours=1)
    return hours


def check_tables(settings: Settings, hours: list[Hour] | None = None) -> CheckReport:
    """Read the counts (offsets first: the tables read afterwards hold at least what the checkpoint
    passed) and compare them."""
    import pyarrow as pa

    from app.checkpoint import committed_offsets
    from app.kafka_io import end_offsets
    from app.metastore import partition_hour
    from app.pipeline_view import HiveCatalog, in_parallel, parquet_files, parquet_rows, read_columns
    from app.producer.ledger import read_ledger

    checkpoint = committed_offsets(settings)
    ledger = [entry for entry in read_ledger(settings).values() if entry.kind in RAW_TABLE_OF_KIND]
    topic_ends = end_offsets(settings, [settings.kafka_topic, settings.kafka_metadata_topic])
    locations = HiveCatalog(settings).locations()
    wanted = None if hours is None else set(hours)

    def hourly(table: str) -> dict[Hour, str]:
        partitions = {partition_hour(name): location for name, location in locations.get(table, {}).items()}
        return {hour: location for hour, location in partitions.items() if wanted is None or hour in wanted}

    raw = hourly("raw_clicks")
    raw_per_hour = dict(zip(raw, in_parallel(parquet_rows, list(raw.values())), strict=True))
    aggregates = {}
    for table in AGGREGATES:
        partitions = hourly(table)
        sums = in_parallel(
            lambda location: sum(read_columns(location, ["clicks"])["clicks"]), list(partitions.values())
        )
        aggregates[table] = dict(zip(partitions, sums, strict=True))

    landed: dict[str, dict[tuple[str, int], dict[int, Landed]]] = {}
    columns = ["source_file", "file_version", "kafka_partition", "kafka_offset"]
    for kind, table in RAW_TABLE_OF_KIND.items():
        files = [path for location in locations.get(table, {}).values() for path in parquet_files(location)]
        if not files:
            continue
        import pyarrow.parquet as pq

        rows = pa.concat_tables([pq.read_table(path, columns=columns) for path in files])
        summary = rows.group_by(columns[:3]).aggregate(
            [("kafka_offset", "count"), ("kafka_offset", "min"), ("kafka_offset", "max")]
        )
        per_file = landed.setdefault(kind, {})
        for row in summary.to_pylist():
            per_file.setdefault((str(row["source_file"]), int(row["file_version"])), {})[
                int(row["kafka_partition"])
            ] = Landed(int(row["kafka_offset_count"]), int(row["kafka_offset_min"]), int(row["kafka_offset_max"]))
    scope = "every hour" if hours is None else f"{len(hours)} hour(s) from {hours[0]} to {hours[-1]}"
    return CheckReport(
        scope=scope,
        raw_clicks=sum(raw_per_hour.values()),
        files_checked=len(ledger),
        problems=find_disagreements(raw_per_hour, aggregates, ledger, landed, checkpoint, topic_ends),
    )


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
