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
import sys

from app.hours import HOUR_LAYOUT, hours_from, parse_moment
from spark_jobs.batch_job import argument, run_batch_job
from spark_jobs.pipeline import Pipeline


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    hour = argument(parse_moment)
    parser.add_argument("--from", dest="first", type=hour, required=True, help="first UTC hour, inclusive")
    parser.add_argument("--to", dest="last", type=hour, required=True, help="last UTC hour, inclusive")
    args = parser.parse_args(argv)
    if args.last < args.first:
        parser.error(f"--to {args.last:{HOUR_LAYOUT}} is before --from {args.first:{HOUR_LAYOUT}}")
    hours = hours_from(args.first, args.last)

    def recompute(pipeline: Pipeline) -> str:
        pipeline.recompute_hours(hours)
        return f"recomputed {len(hours)} hour(s) from {hours[0]} to {hours[-1]}"

    return run_batch_job("recompute-hours", recompute)


if __name__ == "__main__":
    sys.exit(main())
