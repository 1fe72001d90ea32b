"""`make forget USER=123` (or `USER=123,456`): forget users without Airflow.

Runs `spark_jobs/forget_users.py` through spark-submit with the project's settings (it removes the
users' clicks, recomputes what was built from them, rebuilds the days already built, and records
the request in `erasures`), then checks the hours it rewrote against the ledger and writes their
rows of `hour_reconciliation`, as the `clickstream_forget` DAG does. An empty, malformed or unknown
id is refused with a message naming it, and nothing changes. Exit code: the job's, or 1 when the
hours do not reconcile afterwards.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys

from app.erasure import ErasureRequestError, erasures_done, parse_user_ids
from app.settings import load_settings

log = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make forget USER=", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("users", nargs="*", help="user ids (or comma-separated lists of them)")
    args = parser.parse_args(argv)
    try:
        users = parse_user_ids(args.users)
    except ErasureRequestError as error:
        print(f"make forget: {error}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from app.airflow.tasks import spark_job_environment
    from app.spark_session import SPARK_JOBS_DIR, spark_submit_command
    from app.table_checks import check_tables

    settings = load_settings()
    command = spark_submit_command(
        settings, str(SPARK_JOBS_DIR / "forget_users.py"), ["--user", ",".join(str(user) for user in users)]
    )
    job = subprocess.run(command, env={**os.environ, **spark_job_environment(settings)}, check=False)
    if job.returncode != 0:
        return job.returncode
    done = erasures_done(settings, users)
    report = check_tables(settings, done.hours)
    for problem in report.problems:
        log.error("%s", problem)
    print(
        f"forgot user(s) {', '.join(map(str, users))}: {done.rows_removed} raw click(s) removed from "
        f"{len(done.hours)} hour(s); days rebuilt: {', '.join(done.days) or 'none'}; "
        f"hours reconciled: {'yes' if not report.problems else 'no, see above'}"
    )
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
