"""`make sql`: a SQL shell on the Hive tables (beeline on the Spark Thrift server).

Starts the metastore and the Spark Thrift server when they are not running (the server stays up
for the next shell; `make down` stops it), then opens the beeline that ships with pyspark on the
project's database. Arguments go to beeline: `make sql ARGS='-e "SHOW TABLES"'` runs one statement.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys

from app.runtime import deps
from app.runtime.hive_metastore import HiveMetastore
from app.runtime.process import RuntimeErrorWithHint
from app.runtime.spark_thrift import SparkThriftServer
from app.settings import SettingsError, load_settings

log = logging.getLogger("app.tools.sql_shell")


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = load_settings()
        for service in (HiveMetastore(settings), SparkThriftServer(settings)):
            service.start()
    except (RuntimeErrorWithHint, SettingsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    beeline = str(deps.spark_home() / "bin" / "beeline")
    environment = {**os.environ, "SPARK_HOME": str(deps.spark_home())}
    user = os.environ.get("USER", "clickstream")
    # the database may not exist before the first Spark job: create it as the jobs do
    server = settings.spark_thrift_jdbc_url.rsplit("/", 1)[0] + "/default"
    create = f"CREATE DATABASE IF NOT EXISTS `{settings.hive_database}`"
    created = subprocess.run(
        [beeline, "-u", server, "-n", user, "--silent=true", "-e", create],
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    if created.returncode != 0:
        print(f"error: {create} failed on {server}:\n{created.stderr[-2000:]}", file=sys.stderr)
        return 1
    command = [beeline, "-u", settings.spark_thrift_jdbc_url, "-n", user]
    # not --silent=true: in that mode beeline 2.3 prints the Thrift server's missing progress as "null"
    command += ["--showWarnings=false", *(sys.argv[1:] if argv is None else argv)]
    sys.stdout.flush()
    os.execve(beeline, command, environment)  # noqa: S606 - beeline from the pinned pyspark


if __name__ == "__main__":
    sys.exit(main())
