"""The benchmarks' own logic: the data folder, and the figures read from logs and polls."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.settings import REPO_ROOT
from app.tools.bench.airflow_run import drain_split
from app.tools.bench.common import flat_data_folder
from app.tools.bench.latency import delays, percentile
from app.tools.bench.spark import files_written, progress, table_seconds


def test_the_data_folder_is_flattened_without_symbolic_links(tmp_path: Path) -> None:
    source = tmp_path / "globo"
    (source / "clicks").mkdir(parents=True)
    (source / "clicks" / "clicks_hour_000.csv").write_text("a\n")
    (source / "clicks_hour_001.csv").write_text("b\n")
    (source / "articles_metadata.csv").write_text("c\n")
    (source / "README.md").write_text("not data\n")
    assert flat_data_folder(source, tmp_path / "flat") == 3
    names = sorted(path.name for path in (tmp_path / "flat").iterdir())
    assert names == ["articles_metadata.csv", "clicks_hour_000.csv", "clicks_hour_001.csv"]
    assert not any(path.is_symlink() for path in (tmp_path / "flat").iterdir())  # the producer refuses those


def test_a_folder_without_click_files_is_named(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="BENCH_DATA_DIR"):
        flat_data_folder(tmp_path, tmp_path / "flat")


STREAMING_JOB_LOG = """\
2026-11-28 07:04:46,359 INFO spark_jobs.streaming_job: query 5d8f started
2026-11-28 07:05:29,000 INFO spark_jobs.tables: raw_clicks: appended 325 row(s) to 149 partition(s) (149 new) in 2.0 s
2026-11-28 07:05:44,500 INFO spark_jobs.tables: article_hourly: replaced 149 partition(s) with version b
2026-11-28 07:06:10,000 INFO spark_jobs.pipeline: batch 0: 325 clicks, 1 articles, 0 quarantined, 149 hour(s) recomputed
2026-11-28 07:06:10,616 INFO spark_jobs.streaming_job: batch 0: 499874 rows, 5956 rows/s, 83923 ms, offsets behind: 1
2026-11-28 07:06:40,000 INFO spark_jobs.tables: raw_clicks: appended 100 row(s) to 3 partition(s) (0 new) in 0.2 s
2026-11-28 07:06:50,000 INFO spark_jobs.pipeline: batch 1: 100 clicks, 0 articles, 0 quarantined, 3 hour(s) recomputed
2026-11-28 07:06:50,100 INFO spark_jobs.streaming_job: batch 1: 126 rows, 3 rows/s, 39000 ms, offsets behind: 0
2026-11-28 07:07:10,000 INFO spark_jobs.tables: raw_clicks: appended 10 row(s) to 3 partition(s) (1 new) in 0.1 s
2026-11-28 07:07:12,000 INFO spark_jobs.pipeline: batch 2: 10 clicks, 0 articles, 0 quarantined, 3 hour(s) to \
recompute after the drain
2026-11-28 07:07:12,100 INFO spark_jobs.streaming_job: batch 2: 10 rows, 3 rows/s, 3000 ms, offsets behind: 0
2026-11-28 07:07:30,000 INFO spark_jobs.pipeline: recomputed 3 hour(s) landed by the drain in 17.5 s
"""


def test_the_drain_time_is_its_micro_batches_and_the_recomputation_after_them() -> None:
    rows, batches, seconds = progress(STREAMING_JOB_LOG)
    assert (rows, batches) == (500_010, 3)
    assert seconds == pytest.approx(122.923 + 3.0 + 17.5)


def test_recomputing_is_counted_in_the_micro_batches_and_after_the_drain() -> None:
    processing, recomputing, rows = drain_split(STREAMING_JOB_LOG)
    assert rows == 500_010
    assert processing == pytest.approx(143.423)
    assert recomputing == pytest.approx(41.0 + 10.0 + 17.5)  # in two micro-batches, and after the drain


def test_each_click_waits_for_the_first_poll_that_counts_it() -> None:
    published = [10.0, 10.5, 11.0, 12.0]
    seen = [(10.6, 0), (11.2, 2), (12.2, 3), (13.0, 4), (14.0, 4)]
    assert delays(published, seen) == pytest.approx([1.2, 0.7, 1.2, 1.0])
    assert delays(published, seen[:3]) == pytest.approx([1.2, 0.7, 1.2])  # the last one never seen


def test_percentiles_pick_a_measured_value() -> None:
    values = [float(n) for n in range(1, 101)]
    assert percentile(values, 0.5) in (50.0, 51.0)
    assert percentile(values, 0.95) == 95.0
    assert percentile([3.0], 0.95) == 3.0


def test_files_and_seconds_of_each_table_come_from_the_write_lines() -> None:
    log_text = """\
2026-11-28 10:17:05,360 INFO spark_jobs.tables: raw_clicks: appended 3252 row(s) to 149 partition(s) (149 new) in 11.6 s
2026-11-28 10:17:07,697 INFO spark_jobs.tables: articles: replaced 16 partition(s) with version v2 in 2.8 s
2026-11-28 10:17:32,474 INFO spark_jobs.tables: raw_clicks: appended 3253 row(s) to 138 partition(s) (55 new) in 8.9 s
"""
    assert files_written(log_text) == 149 + 16 + 138
    assert table_seconds(log_text) == pytest.approx({"raw_clicks": 20.5, "articles": 2.8})


def test_the_sensor_benchmarks_files_are_valid_one_row_files_with_different_contents(tmp_path: Path) -> None:
    from app.producer.parsing import read_file
    from app.tools.bench.sensor import SensorRuns, one_row_files, sensor_section

    source = REPO_ROOT / "app" / "data" / "clicks_hour_000.csv"
    one_row_files(tmp_path / "folder", source, "clicks_hour_", 3)
    files = sorted((tmp_path / "folder").iterdir())
    assert [path.name for path in files] == ["clicks_hour_00000.csv", "clicks_hour_00001.csv", "clicks_hour_00002.csv"]
    assert all(len(path.read_text().splitlines()) == 2 for path in files)
    assert len({read_file(path).sha256 for path in files}) == 3  # the producer would refuse a copy
    section = "\n".join(sensor_section(SensorRuns(3, 1.0, [0.4, 0.5, 0.6], [0.01, 0.01, 0.02])))
    assert "**Poll 0.50 s** (goal: under 1 s): met." in section


PRODUCER_PERFORMANCE_OUTPUT = """\
312345 records sent, 62469.0 records/sec (15.60 MB/sec), 12.1 ms avg latency, 300.0 ms max latency.
In steady state.
1041909 records sent, 801234.567800 records/sec (205.40 MB/sec), 10.11 ms avg latency, 350.00 ms max \
latency, 8 ms 50th, 30 ms 95th, 60 ms 99th, 90 ms 99.9th.
937719 steady state records sent, 851698.100000 records/sec (218.30 MB/sec), 9.50 ms avg latency, 300.00 \
ms max latency, 7 ms 50th, 28 ms 95th, 55 ms 99th, 80 ms 99.9th.
"""


def test_the_ceiling_is_read_from_producer_performances_summaries_not_an_interval_report() -> None:
    from app.tools.bench.producer import ceiling_summary

    total, steady = ceiling_summary(PRODUCER_PERFORMANCE_OUTPUT)
    assert total == (1_041_909, 801_234.5678)
    assert steady == (937_719, 851_698.1)
    assert ceiling_summary(PRODUCER_PERFORMANCE_OUTPUT.split("937719")[0])[1] is None
    with pytest.raises(SystemExit, match="no summary"):
        ceiling_summary(PRODUCER_PERFORMANCE_OUTPUT.splitlines()[0])


def test_the_large_file_repeats_the_click_rows_under_one_header(tmp_path: Path) -> None:
    from app.tools.bench.large_file import write_large_file

    for name, rows in (("clicks_hour_000.csv", "1,2\n3,4\n"), ("clicks_hour_001.csv", "5,6")):
        (tmp_path / name).write_text("a,b\n" + rows)
    path = tmp_path / "large.csv"
    assert write_large_file(tmp_path, path, 28) == 6  # stops at the first body that reaches the size
    assert path.read_text() == "a,b\n1,2\n3,4\n5,6\n1,2\n3,4\n5,6\n"


def test_latency_percentiles_are_over_every_click_of_every_counted_replay() -> None:
    from app.tools.bench.latency import LatencyRun, latency_section

    warm_up = LatencyRun(2, 1020.0, [60.0, 60.0])  # reported apart, never in the figures
    runs = [LatencyRun(4, 1010.0, [1.0, 1.0, 1.0, 1.0]), LatencyRun(4, 1000.0, [9.0, 9.0, 9.0, 30.0])]
    section = "\n".join(latency_section(warm_up, runs, "5 seconds", 1000.0))
    assert "| all | 8 | 1,005 | 5.0 | 30.0 |" in section or "| all | 8 | 1,005 | 9.0 | 30.0 |" in section
    assert "max 30.0 s" in section and "95th percentile under 10 s (missed)" in section
    assert "A first replay of 2 clicks warmed the stream up and is not counted: median 60.0 s" in section
    assert "at 1,000 clicks/s or more (held)." in section
    slow = [LatencyRun(4, 995.0, [1.0] * 4), LatencyRun(4, 990.0, [1.0] * 4)]
    assert "(missed: the replays held 992)." in "\n".join(latency_section(warm_up, slow, "5 seconds", 1000.0))


def test_the_report_names_the_commit_it_measured() -> None:
    import re

    from app.tools.bench.common import commit

    assert re.fullmatch(r"[0-9a-f]{12}( with uncommitted changes)?", commit())


def test_the_report_says_how_long_each_part_of_the_bench_took() -> None:
    from app.tools.bench.__main__ import Stopwatch

    clock = iter([0.0, 60.0, 150.0, 210.0, 240.0])
    stopwatch = Stopwatch(lambda: next(clock))
    stopwatch.lap("services")
    stopwatch.lap("Airflow runs")
    stopwatch.lap("the run on HDFS")
    stopwatch.lap("Airflow runs")  # a part that runs in turns adds up
    assert stopwatch.line() == "Where the time went (minutes): services 1.0; Airflow runs 2.0; the run on HDFS 1.0."


def test_the_hdfs_run_is_set_beside_the_local_run_before_it_not_the_median_of_all() -> None:
    from app.tools.bench.airflow_run import AirflowRun, SmallUpdate, store_section
    from app.tools.bench.spark import DrainRun

    def airflow_run(total: float) -> AirflowRun:
        drain = DrainRun(rows=1000, batches=1, query_seconds=10.0, wall_seconds=20.0, driver_java_mib=1.0,
                         driver_python_mib=1.0, files=18)  # fmt: skip
        update = SmallUpdate(drain_task_seconds=9.0, batch_seconds=3.0, recompute_seconds=1.0, hours_recomputed=1,
                             run_seconds=30.0)  # fmt: skip
        return AirflowRun(total_seconds=total, run_seconds=total + 10, scheduling=1.0, publishing=2.0,
                          spark_start_up=5.0, landing=8.0, recomputing=2.0, checking=1.0, drain=drain, bare=None,
                          update=update)  # fmt: skip

    lines = store_section([airflow_run(80.0), airflow_run(100.0), airflow_run(100.0)], [airflow_run(120.0)])
    assert "| trigger to last partition | 80.0 | 120.0 | 1.50 | 120.0 |" in lines
    assert any("(1 of them: the bench's time goes to the scale series)" in line for line in lines)
