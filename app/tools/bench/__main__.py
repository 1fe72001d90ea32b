"""`make bench`: clickstream against ceilings measured in the same run, on the same machine.

Each figure is the median of `--runs` runs (3 by default) and is set beside a ceiling measured in
the same invocation, so the ratios hold on a noisy shared machine. The report is written to
`docs/benchmarks.md` with the machine's cores, memory, Java and library versions:
1. our producer (all click files and the catalogue of `BENCH_DATA_DIR`) against Kafka's own
   `ProducerPerformance` with our producer's properties and real messages, and against the bare
   Python client sending the same messages (`app/tools/bench/producer.py`, `app/tools/bench/client_floor.py`);
2. our producer against the original project's way, one JSON message per row with kafka-python
   (`app/tools/bench/original_producer.py`);
3. the streaming job draining what the producer published into the raw tables and every
   aggregate, against a bare Kafka-to-Parquet query over the same topics (`app/tools/bench/spark.py`);
4. one `clickstream_hourly` Airflow run over the whole folder against the sum of the two ceilings,
   and where its time goes (`app/tools/bench/airflow_run.py`);
5. the streaming job's latency under a replay at a fixed rate (`app/tools/bench/latency.py`);
6. the peak resident memory of the producer and of the Spark driver in those runs, and of the
   producer publishing one 2 GiB click file (`app/tools/bench/large_file.py`);
7. a small update after the whole folder is in: 100 new clicks and one changed article through
   Airflow (`app/tools/bench/airflow_run.py`);
8. the sensor's poll of a folder of 10,000 published files (`app/tools/bench/sensor.py`);
9. the scale series: the data set replicated to 1x, 3x and 10x, each size published, drained, and
   set beside the fair ceilings of the producer and of the drain, with the small update, an old
   hour's recomputation, the pipeline view, `check_tables` and one erasure timed on its tables
   (`app/tools/bench/scale.py`; `make bench-scale` runs it alone);
10. item 4's run and item 7's update again with the lake, checkpoints and warehouse on HDFS (a
   NameNode and a DataNode of the benchmark's own), right after the first run on the local file
   system (`app/tools/bench/airflow_run.py`).

The original way (item 2) and the HDFS run (item 10) run once, so that the whole bench, the scale
series included, fits in 45 minutes on 2 cores; the report says how long each part took.

The benchmark starts its own broker, PostgreSQL, HDFS, metastore and Airflow (a fresh state folder, free loopback
ports), so every run begins with empty topics and tables and the user's state is left alone;
it stops them when done.
"""

from __future__ import annotations

import argparse
import logging
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from app.runtime.hdfs import Hdfs
from app.runtime.hive_metastore import HiveMetastore
from app.runtime.kafka_broker import KafkaBroker
from app.runtime.postgres import PostgresServer
from app.settings import REPO_ROOT, Settings, load_settings, with_own_names
from app.storage import Location
from app.tools.bench.airflow_run import AirflowRun, run_through_airflow, store_section, update_section
from app.tools.bench.common import bench_settings, flat_data_folder, listing, machine, median_of
from app.tools.bench.large_file import large_file_run, large_file_section
from app.tools.bench.latency import latency_runs, latency_section
from app.tools.bench.producer import producer_runs, producer_section
from app.tools.bench.scale import add_sizes_argument, scale_intro, scale_section, scale_series
from app.tools.bench.sensor import sensor_runs, sensor_section
from app.tools.bench.spark import spark_section

log = logging.getLogger("app.tools.bench")

REPORT = REPO_ROOT / "docs" / "benchmarks.md"
BENCH_GOAL_MINUTES = 45  # the whole bench, the scale series included
LATENCY_INTERVAL = "5 seconds"
LATENCY_RATE = 1000.0  # clicks/s the replays must hold (they ask a little more: latency.PACING_HEADROOM)


def on_hdfs(settings: Settings) -> Settings:
    """`settings` with the lake, the checkpoints and the warehouse on the benchmark's HDFS (in a
    folder of their own), the rest unchanged."""
    root = Location.parse(f"hdfs://127.0.0.1:{settings.hdfs_namenode_port}/bench/{secrets.token_hex(4)}")
    return replace(
        settings,
        parquet_destination_path=root / "lake",
        check_point_location=root / "checkpoints",
        hive_warehouse_dir=root / "warehouse",
    )


def airflow_section(runs: list[AirflowRun], producer_ceiling_seconds: float, bare_seconds: float) -> list[str]:
    ceiling = producer_ceiling_seconds + bare_seconds
    total = median_of(run.total_seconds for run in runs)
    parts = [
        ("scheduling and the small tasks (trigger to first task, gaps, sensor, hours)", "scheduling"),
        ("publishing (both publish tasks)", "publishing"),
        ("Spark start-up (the drain task outside its micro-batches)", "spark_start_up"),
        ("draining: landing the raw rows (the micro-batches)", "landing"),
        ("recomputing the aggregates of the hours landed (after the last micro-batch)", "recomputing"),
    ]
    return [
        "## 4. End to end through Airflow",
        "",
        "`clickstream_hourly` triggered as the UI does (the data folder as its parameter) on an Airflow of "
        "the benchmark's own with fresh topics and tables, from the trigger to the end of the drain (the "
        "last Hive partition written); the ceiling is `ProducerPerformance`'s time for as many records "
        "plus the bare query's whole `spark-submit` (start-up included), both measured above.",
        "",
        "| | seconds (median) | runs |",
        "|---|---:|---|",
        f"| trigger to last partition | {total:,.1f} | {listing((run.total_seconds for run in runs), 1)} |",
        f"| sum of the ceilings | {ceiling:,.1f} | |",
        f"| whole run, `check_tables` included | {median_of(run.run_seconds for run in runs):,.1f} | "
        f"{listing((run.run_seconds for run in runs), 1)} |",
        "",
        f"**Ratio: {ceiling / total:.2f}** of the ceilings' speed ({total / ceiling:.1f} times their time).",
        "",
        "Where the time goes (median seconds):",
        "",
        "| part | seconds |",
        "|---|---:|",
        *(f"| {label} | {median_of(getattr(run, field) for run in runs):,.1f} |" for label, field in parts),
        f"| checking the tables (after the last partition) | {median_of(run.checking for run in runs):,.1f} |",
        "",
    ]


class Stopwatch:
    """The minutes each part of the bench took, in the order they ran."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.parts: dict[str, float] = {}
        self._clock = clock
        self._last = clock()

    def lap(self, part: str) -> None:
        now = self._clock()
        self.parts[part] = self.parts.get(part, 0.0) + (now - self._last) / 60
        self._last = now

    def line(self) -> str:
        return (
            "Where the time went (minutes): "
            + "; ".join(f"{part} {minutes:.1f}" for part, minutes in self.parts.items())
            + "."
        )


def write_report(
    sections: list[str], facts: dict[str, str], runs: int, data_dir: Path, seconds: float, stopwatch: Stopwatch
) -> None:
    lines = [
        "# Benchmarks",
        "",
        f"Written by `make bench` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, in {seconds / 60:.1f} minutes "
        f"(goal: under {BENCH_GOAL_MINUTES} on 2 cores: {'met' if seconds < BENCH_GOAL_MINUTES * 60 else 'missed'}); "
        f"every figure is the median of {runs} runs, each beside its ceiling measured in the same run, "
        f"except where a section says otherwise. Data: `{data_dir}`.",
        "",
        stopwatch.line(),
        "",
        "| machine | |",
        "|---|---|",
        *(f"| {key} | {value} |" for key, value in facts.items()),
        "",
        *sections,
    ]
    REPORT.write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.tools.bench", description=__doc__)
    parser.add_argument("--runs", type=int, default=3, help="runs per figure (the median is reported)")
    add_sizes_argument(parser)
    args = parser.parse_args(argv)
    sizes: list[int] = args.sizes
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    base = load_settings()
    data_dir = base.bench_data_dir
    started = time.monotonic()
    stopwatch = Stopwatch()
    facts = machine()
    with tempfile.TemporaryDirectory(prefix="clickstream-bench-") as scratch_name:
        scratch = Path(scratch_name)
        scratch.chmod(0o711)  # as root, PostgreSQL runs as `postgres`, which must reach its folder
        settings = bench_settings(base, scratch / "state")
        data = scratch / "data"
        log.info("%s files from %s", flat_data_folder(data_dir, data), data_dir)
        settings = replace(settings, producer_data_root_directory=data)
        services = [KafkaBroker(settings), PostgresServer(settings), Hdfs(settings), HiveMetastore(settings)]
        try:
            for service in services:
                service.start()
            stopwatch.lap("services")
            producer = producer_runs(settings, data, scratch / "runs", args.runs)
            producer_lines, producer_memory, ceiling_seconds = producer_section(producer, settings)
            stopwatch.lap("producer (items 1, 2)")
            large = large_file_run(with_own_names(settings, scratch / "large", "bench"), data, scratch)
            stopwatch.lap("a 2 GiB file (item 6)")
            airflow_runs, hdfs_runs = [], []
            for number in range(1, args.runs + 1):
                run_settings = with_own_names(settings, scratch / "airflow", "bench")
                airflow_runs.append(run_through_airflow(run_settings, data, scratch / "runs" / str(number)))
                log.info("run %s: clickstream_hourly %s", number, airflow_runs[-1])
                stopwatch.lap("Airflow runs and the bare query (items 3, 4, 7)")
                if number == 1:  # the same run with the tables on HDFS, right after (the same machine state)
                    hdfs_settings = on_hdfs(with_own_names(settings, scratch / "airflow-hdfs", "bench"))
                    hdfs_runs.append(
                        run_through_airflow(hdfs_settings, data, scratch / "runs" / f"{number}-hdfs", with_bare=False)
                    )
                    log.info("run %s on HDFS: clickstream_hourly %s", number, hdfs_runs[-1])
                    stopwatch.lap("the run on HDFS (item 10)")
            bare = [run.bare for run in airflow_runs if run.bare is not None]
            spark_lines, spark_memory = spark_section([run.drain for run in airflow_runs], bare, int(facts["cores"]))
            warm_up, latency = latency_runs(
                with_own_names(settings, scratch / "latency", "bench"),
                data,
                scratch,
                args.runs,
                LATENCY_INTERVAL,
                LATENCY_RATE,
            )
            stopwatch.lap("latency (item 5)")
            sensor = sensor_runs(
                with_own_names(settings, scratch / "sensor", "bench"), data, scratch / "sensor-data", args.runs
            )
            stopwatch.lap("sensor (item 8)")
            scale = scale_series(settings, data, scratch / "scale", sizes)
            stopwatch.lap("scale series (item 9)")
        finally:
            for service in reversed(services):
                service.stop()
            shutil.rmtree(settings.state_dir, ignore_errors=True)
    sections = [
        *producer_lines,
        *spark_lines,
        *airflow_section(airflow_runs, ceiling_seconds, median_of(run.wall_seconds for run in bare)),
        *latency_section(warm_up, latency, LATENCY_INTERVAL, LATENCY_RATE),
        "## 6. Memory",
        "",
        "Peak resident memory (VmHWM), median of the runs above:",
        "",
        *producer_memory,
        *large_file_section(large),
        *spark_memory,
        "",
        *update_section(airflow_runs),
        *sensor_section(sensor),
        *scale_intro(sizes),
        *scale_section(scale, title="### The scale table"),
        "",
        *store_section(airflow_runs, hdfs_runs),
    ]
    write_report(sections, facts, args.runs, data_dir, time.monotonic() - started, stopwatch)
    log.info("wrote %s", REPORT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
