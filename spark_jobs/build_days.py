"""The daily job: build the daily tables (`article_daily`, `category_daily`, `day_summary`) of UTC days.

Usage (through spark-submit):
  build_days.py --day 2017-10-01 [--day 2017-10-02 ...]

Each day is built from the raw clicks of its 24 hours joined with the current articles, so its
distinct users and sessions are exact for the day (not sums of hours), and its partitions are
swapped in whole: running it twice gives identical partitions. `clickstream_daily` runs it once all
24 hours of a day have landed and balanced, and again when one of them is recomputed.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime

from app.hours import DAY_LAYOUT
from spark_jobs.batch_job import argument, run_batch_job
from spark_jobs.pipeline import Pipeline


def parse_day(text: str) -> str:
    try:
        return datetime.strptime(text, DAY_LAYOUT).strftime(DAY_LAYOUT)
    except ValueError:
        raise ValueError(f"not a day: {text!r} (expected e.g. 2017-10-01)") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--day", dest="days", type=argument(parse_day), action="append", required=True, help="UTC day")
    days: list[str] = parser.parse_args(argv).days

    def build(pipeline: Pipeline) -> str:
        built = pipeline.build_days(days)
        return f"built {len(built)} day(s) with clicks of {len(days)} asked: {built}"

    return run_batch_job("build-days", build)


if __name__ == "__main__":
    sys.exit(main())
