"""The check job: fail loudly when the Hive tables disagree with each other or with what was published.

Usage (through spark-submit):
  check_tables.py [--from 2017-10-01T00 --to 2017-10-01T05]

Two checks, both on counts that every table must agree on:
1. For each hour of the range (every hour in the tables when no range is given): the clicks of
   `article_hourly`, `category_hourly` and `context_hourly` each add up to the rows of that hour
   in `raw_clicks`.
2. For each file in the producer's ledger whose records the stream has passed (its offsets are
   below the checkpoint's): the raw table holds exactly the ledger's row count for that file and
   version, at offsets inside the ranges the ledger recorded, and the topic's end is past them.

Exit code 0 when everything agrees, 1 with one line per disagreement otherwise. The comparison
itself (`find_disagreements`) is plain Python over the counts, so it is unit-tested without Spark.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from pyspark.sql import functions as F

from app.checkpoint import Offsets, committed_offsets
from app.kafka_io import end_offsets
from app.producer.ledger import LedgerEntry, read_ledger
from app.settings import load_settings
from app.spark_session import build_spark_session, configure_job_logging
from spark_jobs.pipeline import Hour, hours_filter
from spark_jobs.recompute_hours import hours_between, parse_hour
from spark_jobs.tables import TableStore

log = logging.getLogger("spark_jobs.check_tables")

AGGREGATES = ("article_hourly", "category_hourly", "context_hourly")
RAW_TABLE_OF_KIND = {"clicks": "raw_clicks", "articles": "raw_articles"}


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--from", dest="first", type=parse_hour, help="first UTC hour, inclusive")
    parser.add_argument("--to", dest="last", type=parse_hour, help="last UTC hour, inclusive")
    args = parser.parse_args(argv)
    if (args.first is None) != (args.last is None):
        parser.error("--from and --to go together")
    configure_job_logging()
    hours = hours_between(args.first, args.last) if args.first else None
    settings = load_settings()
    # the offsets first: the tables read afterwards hold at least what the checkpoint passed
    checkpoint = committed_offsets(settings)
    ledger = [entry for entry in read_ledger(settings).values() if entry.kind in RAW_TABLE_OF_KIND]
    topic_ends = end_offsets(settings, [settings.kafka_topic, settings.kafka_metadata_topic])
    spark = build_spark_session(settings, "clickstream-check-tables")
    spark.sparkContext.setLogLevel("WARN")
    try:
        store = TableStore(spark, settings)
        store.ensure_tables()

        def per_hour(table: str, total: str) -> dict[Hour, int]:
            rows = store.table(table)
            if hours is not None:
                rows = rows.where(hours_filter(hours))
            value = F.count(F.lit(1)) if total == "*" else F.sum(total)
            return {(str(r[0]), int(r[1])): int(r[2]) for r in rows.groupBy("dt", "hour").agg(value).collect()}

        raw_per_hour = per_hour("raw_clicks", "*")
        aggregates = {table: per_hour(table, "clicks") for table in AGGREGATES}
        landed: dict[str, dict[tuple[str, int], dict[int, Landed]]] = {}
        for kind, table in RAW_TABLE_OF_KIND.items():
            files = landed.setdefault(kind, {})
            summary = (
                store.table(table)
                .groupBy("source_file", "file_version", "kafka_partition")
                .agg(
                    F.count(F.lit(1)).alias("rows"),
                    F.min("kafka_offset").alias("first"),
                    F.max("kafka_offset").alias("last"),
                )
                .collect()
            )
            for row in summary:
                file = (str(row.source_file), int(row.file_version))
                files.setdefault(file, {})[int(row.kafka_partition)] = Landed(
                    int(row.rows), int(row.first), int(row.last)
                )
    finally:
        spark.stop()
    problems = find_disagreements(raw_per_hour, aggregates, ledger, landed, checkpoint, topic_ends)
    scope = f"{len(hours)} hour(s) from {hours[0]} to {hours[-1]}" if hours else "every hour"
    if problems:
        for problem in problems[:50]:
            log.error("disagreement: %s", problem)
        log.error("%s disagreement(s) in the tables (%s); first: %s", len(problems), scope, problems[0])
        return 1
    log.info(
        "the tables agree: %s, %s raw clicks; %s ledger file(s) checked against the raw tables",
        scope,
        sum(raw_per_hour.values()),
        len(ledger),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
