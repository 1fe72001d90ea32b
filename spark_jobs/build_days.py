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
import logging
import sys
from datetime import datetime

from app.hours import DAY_LAYOUT
from app.settings import load_settings
from app.spark_session import build_spark_session, configure_job_logging
from spark_jobs.pipeline import Pipeline
from spark_jobs.tables import TableStore

log = logging.getLogger("spark_jobs.build_days")


def parse_day(text: str) -> str:
    try:
        return datetime.strptime(text, DAY_LAYOUT).strftime(DAY_LAYOUT)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a day: {text!r} (expected e.g. 2017-10-01)") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--day", dest="days", type=parse_day, action="append", required=True, help="UTC day")
    args = parser.parse_args(argv)
    configure_job_logging()
    settings = load_settings()
    spark = build_spark_session(settings, "clickstream-build-days")
    spark.sparkContext.setLogLevel("WARN")
    try:
        store = TableStore(spark, settings)
        store.ensure_tables()
        built = Pipeline(store, settings).build_days(args.days)
        store.remove_retired()
        log.info("built %s day(s) with clicks of %s asked: %s", len(built), len(args.days), built)
    finally:
        spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
