"""The batch job: recompute the aggregate partitions of a range of hours from the raw tables.

Usage (through spark-submit):
  recompute_hours.py --from 2017-10-01T00 --to 2017-10-01T05

Both ends are UTC hours and inclusive. Every aggregate partition of those hours (and the
sessions that started in them) is rebuilt from `raw_clicks` joined with the current `articles`,
and swapped in whole, so running it twice gives identical partitions, also while the streaming
job writes. The hourly DAG runs it for its data interval; backfills run it for theirs.
"""

from __future__ import annotations

import argparse
import logging
import sys
from datetime import UTC, datetime, timedelta

from app.settings import load_settings
from app.spark_session import build_spark_session, configure_job_logging
from spark_jobs.pipeline import Hour, Pipeline
from spark_jobs.tables import TableStore

log = logging.getLogger("spark_jobs.recompute_hours")


def parse_hour(text: str) -> datetime:
    for layout in ("%Y-%m-%dT%H", "%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S%z"):
        try:
            moment = datetime.strptime(text, layout)
        except ValueError:
            continue
        moment = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
        return moment.replace(minute=0, second=0, microsecond=0)
    raise argparse.ArgumentTypeError(f"not an hour: {text!r} (expected e.g. 2017-10-01T05)")


def hours_between(first: datetime, last: datetime) -> list[Hour]:
    if last < first:
        raise ValueError(f"--to {last:%Y-%m-%dT%H} is before --from {first:%Y-%m-%dT%H}")
    hours = []
    moment = first
    while moment <= last:
        hours.append((moment.strftime("%Y-%m-%d"), moment.hour))
        moment += timedelta(hours=1)
    return hours


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--from", dest="first", type=parse_hour, required=True, help="first UTC hour, inclusive")
    parser.add_argument("--to", dest="last", type=parse_hour, required=True, help="last UTC hour, inclusive")
    args = parser.parse_args(argv)
    configure_job_logging()
    try:
        hours = hours_between(args.first, args.last)
    except ValueError as error:
        parser.error(str(error))
    settings = load_settings()
    spark = build_spark_session(settings, "clickstream-recompute-hours")
    spark.sparkContext.setLogLevel("WARN")
    try:
        store = TableStore(spark, settings)
        store.ensure_tables()
        pipeline = Pipeline(store, settings)
        pipeline.recompute_hours(hours)
        store.remove_retired()
        log.info("recomputed %s hour(s) from %s to %s", len(hours), hours[0], hours[-1])
    finally:
        spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
