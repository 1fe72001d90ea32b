"""`python -m app.tools.bench.spark_start`: what reusing a running Spark would save each Spark task.

Issue 33 asks for an option that pays Spark's start-up once. This measures the one Spark offers
without changing what a job does, a Spark Connect server (`SparkConnectServer`, in Spark's own jars),
against what every task of the hourly run does today, a `spark-submit` of its own:
- the probe through `spark-submit`, with the project's Spark settings (`spark_conf`, the class
  archive), as `SparkSubmitOperator` starts a job: a new driver JVM, a session, the probe, the stop;
- a Spark Connect server with the same settings started once, on a free loopback port, then the
  same probe as a new Python process connecting to it (`SparkSession.builder.remote`), as a task
  that reused it would.
The probe is the same small query both ways (an exact distinct count over a million rows), so what
differs is the start. Each way runs `--runs` times; the medians and every run are printed as a
Markdown table. It starts and stops its own server; nothing else is needed (no broker, no metastore).
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from app.settings import REPO_ROOT, Settings, load_settings
from app.tools.bench.common import free_port, listing, median_of, timed

CONNECT_SERVER = "org.apache.spark.sql.connect.service.SparkConnectServer"
PROBE = """
import sys, time
started = time.perf_counter()
from pyspark.sql import SparkSession
builder = SparkSession.builder.remote(sys.argv[1]) if len(sys.argv) > 1 else SparkSession.builder
spark = builder.appName("clickstream-spark-start-probe").getOrCreate()
count = spark.range(1_000_000).selectExpr("count(distinct id % 1000) AS n").collect()[0][0]
spark.stop()
print(count, time.perf_counter() - started)
"""
SERVER_READY_SECONDS = 180


def _environment(settings: Settings) -> dict[str, str]:
    from app.airflow.tasks import spark_job_environment

    return {**os.environ, **spark_job_environment(settings)}


def _wait_for_port(port: int, server: subprocess.Popen[bytes], log_file: Path) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < SERVER_READY_SECONDS:
        if server.poll() is not None:
            raise SystemExit(f"the Spark Connect server stopped ({server.returncode}):\n{log_file.read_text()[-3000:]}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return time.perf_counter() - started
        time.sleep(0.2)
    raise SystemExit(f"the Spark Connect server did not listen on {port} in {SERVER_READY_SECONDS} s")


def measure(settings: Settings, runs: int, scratch: Path) -> dict[str, list[float]]:
    """Wall seconds of each run of each way, and the server's own start."""
    from app.spark_session import spark_submit_command

    probe = scratch / "probe.py"
    probe.write_text(PROBE)
    environment = _environment(settings)
    no_ui = ["--conf", "spark.ui.enabled=false"]  # both ways alike: no UI to start
    submitted = []
    for _ in range(runs):
        command = spark_submit_command(settings, str(probe))
        command[1:1] = no_ui
        submitted.append(timed(command, environment, REPO_ROOT, "the probe by spark-submit").seconds)
    port = free_port()
    command = spark_submit_command(settings, "spark-internal")  # the server: a class, not a script
    command[1:1] = [
        *("--class", CONNECT_SERVER),
        *no_ui,
        *("--conf", "spark.connect.grpc.binding.address=127.0.0.1"),
        *("--conf", f"spark.connect.grpc.binding.port={port}"),
    ]
    log_file = scratch / "connect-server.log"
    with log_file.open("wb") as output:
        server = subprocess.Popen(command, cwd=REPO_ROOT, env=environment, stdout=output, stderr=subprocess.STDOUT)
    try:
        server_start = _wait_for_port(port, server, log_file)
        connected = []
        for _ in range(runs):
            run = timed(
                [sys.executable, str(probe), f"sc://127.0.0.1:{port}"], environment, REPO_ROOT, "the probe by Connect"
            )
            connected.append(run.seconds)
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    return {"spark-submit": submitted, "Spark Connect": connected, "server": [server_start]}


def report(figures: dict[str, list[float]]) -> list[str]:
    submitted, connected = figures["spark-submit"], figures["Spark Connect"]
    saved = median_of(submitted) - median_of(connected)
    return [
        "| the probe, as a new process | wall seconds (median) | runs |",
        "|---|---:|---|",
        f"| `spark-submit`: its own driver | {median_of(submitted):.1f} | {listing(submitted, 1)} |",
        f"| a client of a running Spark Connect server | {median_of(connected):.1f} | {listing(connected, 1)} |",
        "",
        f"Saved per Spark task: {saved:.1f} s. The server's own start (paid once): {figures['server'][0]:.1f} s.",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.tools.bench.spark_start", description=__doc__)
    parser.add_argument("--runs", type=int, default=3, help="runs of each way (the median is reported)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with tempfile.TemporaryDirectory(prefix="clickstream-spark-start-") as scratch:
        figures = measure(load_settings(), args.runs, Path(scratch))
    print("\n".join(report(figures)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
