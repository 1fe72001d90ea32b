"""The erasure job: forget users everywhere the tables keep their clicks (`spark_jobs/erasure.py`).

Usage (through spark-submit; `make forget USER=123` and the `clickstream_forget` DAG run it):
  forget_users.py --user 123 [--user 456 ...]   (or --user 123,456) [--days-by-airflow]

The daily tables of the days it touched are rebuilt too, unless `--days-by-airflow` (the
`clickstream_forget` DAG): then the DAG announces those days and `clickstream_daily` rebuilds them.

Refused, before anything changes: an empty or malformed id, and an id with no clicks that was never
forgotten (exit code 2, the message naming the id). Running it again for the same users changes
nothing more and records the request again.
"""

from __future__ import annotations

import argparse
import sys

from app.erasure import ErasureRequestError, parse_user_ids
from spark_jobs.batch_job import run_batch_job
from spark_jobs.erasure import forget_users
from spark_jobs.pipeline import Pipeline

REFUSED = 2  # argparse's exit code for bad arguments; also for an id with no clicks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--user", dest="users", action="append", required=True, help="user id (or ids, comma separated)"
    )
    parser.add_argument("--days-by-airflow", action="store_true", help="leave the daily tables to clickstream_daily")
    args = parser.parse_args(argv)
    try:
        users = parse_user_ids(args.users)
    except ErasureRequestError as error:
        parser.error(str(error))

    def forget(pipeline: Pipeline) -> str:
        return forget_users(pipeline, users, build_days=not args.days_by_airflow).sentence()

    try:
        return run_batch_job("forget-users", forget)
    except ErasureRequestError as error:
        print(f"forget_users.py: {error}", file=sys.stderr)
        return REFUSED


if __name__ == "__main__":
    sys.exit(main())
