"""The Spark jobs on real services, through spark-submit: exact aggregates, late metadata, replays,
SIGKILLed drivers, the batch job beside the streaming job, and a checkpoint of another query."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from confluent_kafka import Producer

from app.airflow.tasks import DRAIN_HERE, drain_state, topics_end
from app.checkpoint import pending_hours
from app.pipeline_view import read_state
from app.producer.discovery import FileKind
from app.producer.publisher import PublishOptions, publish
from app.reconciliation import ReconciliationTable
from app.runtime.service import Service
from app.settings import Settings
from app.summary import summarise_tables
from app.table_checks import check_tables
from tests.conftest import own_pipeline
from tests.integration.expected import expected_tables, load_clicks
from tests.integration.jobs import (
    AGGREGATES,
    CLICK_FILES,
    SAMPLE,
    aggregates,
    committed_batches,
    failing_job,
    run_job,
    sample_pipeline,
    shifted_copy,
    start_job,
    started_batches,
    table_rows,
)

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


@pytest.fixture(scope="module")
def landed_sample(
    kafka: Service, metastore: Service, settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    """A pipeline of its own with the sample published and drained, shared by the tests below: each
    counts what it adds, whichever ran before."""
    folder = tmp_path_factory.mktemp("pipeline")
    own = sample_pipeline(settings, folder)
    publish(own)
    run_job(own, "streaming_job.py", "--trigger", "available-now", log=folder / "jobs.log")
    return own


def test_aggregates_and_summary_equal_an_independent_computation_even_with_late_metadata(
    kafka: Service, metastore: Service, settings: Settings, spark: SparkSession, tmp_path: Path
) -> None:
    settings = sample_pipeline(settings, tmp_path / "pipeline")
    log = tmp_path / "jobs.log"
    # clicks first: their articles are not known yet and count under category -1
    publish(settings, PublishOptions(kinds=[FileKind.CLICKS]))
    run_job(settings, "streaming_job.py", "--trigger", "available-now", log=log)
    assert len(table_rows(spark, settings, "raw_clicks")) == 4208
    assert aggregates(spark, settings) == expected_tables(CLICK_FILES, None)
    assert {row.category_id for row in table_rows(spark, settings, "category_hourly")} == {-1}

    # the metadata arrives later: the hours with those clicks are recomputed with it
    publish(settings)
    run_job(settings, "streaming_job.py", "--trigger", "available-now", log=log)
    assert len(table_rows(spark, settings, "articles")) == 551
    expected = expected_tables(CLICK_FILES, SAMPLE / "articles_metadata.csv")
    assert aggregates(spark, settings) == expected
    assert -1 not in {row.category_id for row in table_rows(spark, settings, "category_hourly")}

    raw = table_rows(spark, settings, "raw_clicks")
    assert len(raw) == len({(r.kafka_partition, r.kafka_offset) for r in raw}) == 4208
    progress = [line for line in log.read_text().splitlines() if "spark_jobs.streaming_job: batch" in line]
    assert progress and all("rows/s" in line and "offsets behind latest" in line for line in progress)

    # the summary `make demo` prints, of these tables
    summary = summarise_tables(spark, settings, top=3)
    assert summary.row_counts["raw_clicks"] == 4208 and summary.row_counts["articles"] == 551
    clicks = load_clicks(CLICK_FILES)
    per_hour = clicks.groupby(["dt", "hour"]).size().sort_values(ascending=False)
    (dt, hour), busiest_clicks = per_hour.index[0], int(per_hour.iloc[0])
    assert summary.busiest_hour == (dt, int(hour)) and summary.busiest_hour_clicks == busiest_clicks
    in_hour = clicks[(clicks.dt == dt) & (clicks.hour == hour)]
    top_article_clicks = in_hour.groupby("click_article_id").size().sort_values(ascending=False).iloc[0]
    assert summary.top_articles[0][2] == int(top_article_clicks)
    assert len(summary.top_categories) == 3


def test_records_that_do_not_parse_are_quarantined_and_the_job_goes_on(
    landed_sample: Settings, spark: SparkSession, tmp_path: Path
) -> None:
    settings = landed_sample
    producer = Producer({"bootstrap.servers": settings.kafka_servers})  # some other producer
    failures: list[str] = []
    coordinates: set[tuple[str, int, int]] = set()

    def delivered(error: Any, message: Any) -> None:
        if error is not None:
            failures.append(str(error))
        else:
            coordinates.add((message.topic(), message.partition(), message.offset()))

    bad = [b"not json at all", b'{"user_id": "abc"}', b"[1, 2, 3]", b'{"article_id": 1.5, "category_id": 2}']
    for value in bad[:3]:
        producer.produce(settings.kafka_topic, value, on_delivery=delivered)
    # the metadata topic is compacted: the broker takes only keyed messages there
    producer.produce(settings.kafka_metadata_topic, bad[3], key=b"1", on_delivery=delivered)
    producer.produce(settings.kafka_metadata_topic, b"x" * 900_000, key=b"2", on_delivery=delivered)  # very large
    assert producer.flush(30) == 0
    assert failures == []
    raw_before = len(table_rows(spark, settings, "raw_clicks"))
    quarantine_before = len(table_rows(spark, settings, "quarantine"))

    run_job(settings, "streaming_job.py", "--trigger", "available-now", log=tmp_path / "job.log")
    rows = table_rows(spark, settings, "quarantine")
    assert len(rows) == quarantine_before + 5
    ours = [row for row in rows if (row.kafka_topic, row.kafka_partition, row.kafka_offset) in coordinates]
    quarantine = {row.raw_value[:40]: row for row in ours}
    assert len(ours) == len(quarantine) == 5
    assert quarantine["not json at all"].reason == "not a JSON object"
    assert quarantine["[1, 2, 3]"].reason == "not a JSON object"
    assert quarantine['{"user_id": "abc"}'].reason.startswith("missing or not an integer: user_id, session_id")
    assert quarantine['{"article_id": 1.5, "category_id": 2}'].reason == (
        "missing or not an integer: article_id, created_at_ts, publisher_id, words_count"
    )
    assert {row.kafka_topic for row in quarantine.values()} == {settings.kafka_topic, settings.kafka_metadata_topic}
    # each quarantined row says where its record is in Kafka
    assert {(row.kafka_topic, row.kafka_partition, row.kafka_offset) for row in quarantine.values()} == coordinates
    assert len(table_rows(spark, settings, "raw_clicks")) == raw_before  # good data unaffected


def test_implausible_click_times_are_set_aside_by_the_producer_and_by_the_job(
    landed_sample: Settings, spark: SparkSession, tmp_path: Path
) -> None:
    """Clicks at -5, 0 and the year 2100 ms, one long before its session starts and a 23-digit
    article id: through our producer they are rejects with their reason; from another producer
    the job quarantines them with the same words; no partition outside the window appears."""
    import json

    from tests.integration.kafka_helpers import read_all

    settings = landed_sample
    header = "user_id,session_id,session_start,session_size,click_article_id,click_timestamp,click_environment,"
    header += "click_deviceGroup,click_os,click_country,click_region,click_referrer_type"
    good = [0, 1506825423271737, 1506825423000, 2, 157541, 1506826828020, 4, 3, 20, 1, 20, 2]
    cases = {  # what changes in a good click -> the start of its reason
        (5, -5): "click_timestamp before CLICKSTREAM_EARLIEST_EVENT_TIME (2000-01-01T00:00:00+00:00): -5",
        (5, 0): "click_timestamp before CLICKSTREAM_EARLIEST_EVENT_TIME (2000-01-01T00:00:00+00:00): 0",
        (5, 4102444800000): "click_timestamp more than CLICKSTREAM_MAX_FUTURE_SECONDS (86400) after it was published",
        (2, 1506826828020 + 3_600_000): "click_timestamp earlier than its session_start by more than",
        (2, 1506826828020 - 2_592_000_001): (
            "click_timestamp later than its session_start by more than CLICKSTREAM_MAX_SESSION_SECONDS (2592000)"
        ),
    }
    rows = []
    for (position, value), _ in cases.items():
        row = list(good)
        row[position] = value
        rows.append(",".join(map(str, row)))
    huge_id = ",".join(map(str, good[:4])) + ",12345678901234567890123," + ",".join(map(str, good[5:]))
    (settings.producer_data_root_directory / "clicks_hour_990.csv").write_text(
        "\n".join([header, *rows, huge_id]) + "\n"
    )
    publish(settings)
    rejected = [json.loads(message.value()) for message in read_all(settings, settings.kafka_rejects_topic)]
    reasons = [r["reason"] for r in rejected if r["file"] == "clicks_hour_990.csv"]
    assert len(reasons) == len(cases) + 1
    assert reasons[-1] == "click_article_id is outside a 64-bit integer: '12345678901234567890123'"
    for reason, expected in zip(reasons, cases.values(), strict=False):
        assert reason.startswith(expected), (reason, expected)

    producer = Producer({"bootstrap.servers": settings.kafka_servers})  # another producer, without checks
    for (position, value), _ in cases.items():
        record = dict(zip(header.split(","), good, strict=True))
        record[header.split(",")[position]] = value
        producer.produce(settings.kafka_topic, json.dumps(record).encode())
    assert producer.flush(30) == 0
    quarantine_before = len(table_rows(spark, settings, "quarantine"))
    run_job(settings, "streaming_job.py", "--trigger", "available-now", log=tmp_path / "job.log")
    quarantine = table_rows(spark, settings, "quarantine")
    assert len(quarantine) == quarantine_before + len(cases)
    for expected in cases.values():
        assert any(row.reason.startswith(expected) for row in quarantine), expected
    days = {row.dt for row in table_rows(spark, settings, "raw_clicks")}
    assert min(days) >= "2000-01-01" and max(days) <= time.strftime("%Y-%m-%d", time.gmtime(time.time() + 86400))

    # the clicks before their session and long after its start have readable times: their hour's
    # reconciliation counts them
    for case in ((2, 1506826828020 + 3_600_000), (2, 1506826828020 - 2_592_000_001)):
        set_aside = next(row for row in quarantine if row.reason.startswith(cases[case]))
        assert set_aside.click_hour == "2017-10-01T03"
    assert {row.click_hour for row in quarantine if row.reason.startswith("click_timestamp before")} == {
        "1969-12-31T23",  # -5 ms
        "1970-01-01T00",  # 0
    }
    check_tables(settings, [("2017-10-01", 3)])
    assert ReconciliationTable(settings).read(["2017-10-01"])[("2017-10-01", 3)]["quarantined"] == 2


def test_checkpoint_of_another_query_stops_the_job_with_a_clear_message(
    landed_sample: Settings, tmp_path: Path
) -> None:
    other = replace(landed_sample, kafka_topic="some-other-topic")
    log = tmp_path / "job.log"
    job = start_job(other, "streaming_job.py", "--trigger", "available-now", log=log)
    assert job.wait(300) == 3
    text = log.read_text()
    assert "was written by another query" in text and "some-other-topic" in text and "CHECK_POINT_LOCATION" in text


def test_batch_job_twice_gives_identical_partitions_while_the_stream_writes(
    landed_sample: Settings, spark: SparkSession, tmp_path: Path
) -> None:
    settings = landed_sample
    raw_before = len(table_rows(spark, settings, "raw_clicks"))
    log = tmp_path / "jobs.log"
    expected = expected_tables(CLICK_FILES, SAMPLE / "articles_metadata.csv")
    hours = {(row[-2], row[-1]) for row in expected["article_hourly"]}
    first, last = min(hours), max(hours)
    bounds = (f"{first[0]}T{first[1]:02d}", f"{last[0]}T{last[1]:02d}")

    stream = start_job(
        settings,
        "streaming_job.py",
        "--trigger",
        "processing-time",
        "--interval",
        "3 seconds",
        log=tmp_path / "stream.log",
    )
    try:
        # the stream gets new hours to write (the same clicks 30 days later) while the batch job runs
        shifted_copy(CLICK_FILES[0], settings.producer_data_root_directory / "clicks_hour_900.csv", days=30)
        publish(settings)
        run_job(settings, "recompute_hours.py", "--from", bounds[0], "--to", bounds[1], log=log)
        once = aggregates(spark, settings, hours)
        run_job(settings, "recompute_hours.py", "--from", bounds[0], "--to", bounds[1], log=log)
        twice = aggregates(spark, settings, hours)
        deadline = time.monotonic() + 300
        while len(table_rows(spark, settings, "raw_clicks")) < raw_before + 1883 and time.monotonic() < deadline:
            assert stream.poll() is None, (tmp_path / "stream.log").read_text()[-4000:]
            time.sleep(2)
    finally:
        os.killpg(stream.pid, signal.SIGTERM)
        stream.wait(120)
    assert once == twice
    expected_sessions = {row for row in expected["sessions"] if (row[-2], row[-1]) in hours}
    assert once == {**{t: expected[t] for t in AGGREGATES if t != "sessions"}, "sessions": expected_sessions}
    assert len(table_rows(spark, settings, "raw_clicks")) == raw_before + 1883


@pytest.mark.parametrize("store", ["local", "hdfs", "s3"])
def test_driver_killed_twice_mid_drain_leaves_every_click_once(
    kafka: Service,
    metastore: Service,
    settings: Settings,
    spark: SparkSession,
    tmp_path: Path,
    store: str,
    request: pytest.FixtureRequest,
) -> None:
    """Killed inside a micro-batch, then again after the last one while the drain recomputes the
    hours it landed: the hours stay pending, the DAG's drain task would start Spark for them although
    the checkpoint is past the topics' end, and the next drain makes every table exact. Then a
    backfill of every hour changes nothing, `check_tables` finds every hour balanced and the pipeline
    view reads the tables: on the local disk, and with the lake, warehouse and checkpoint on HDFS and
    on S3 (SeaweedFS through S3A)."""
    if store in ("hdfs", "s3"):
        request.getfixturevalue(store)
    own = replace(own_pipeline(settings, tmp_path / "pipeline", store), spark_max_offsets_per_trigger=800)
    for path in [*CLICK_FILES, SAMPLE / "articles_metadata.csv"]:
        shutil.copy(path, own.producer_data_root_directory / path.name)
    publish(own)
    log = tmp_path / "jobs.log"

    job = start_job(own, "streaming_job.py", "--trigger", "available-now", log=log)
    deadline = time.monotonic() + 300
    # wait until a batch after a committed one has started, then kill inside it
    in_flight: set[int] = set()
    while time.monotonic() < deadline and job.poll() is None:
        in_flight = started_batches(own.check_point_location) - committed_batches(own.check_point_location)
        if committed_batches(own.check_point_location) and in_flight:
            break
        time.sleep(0.2)
    assert job.poll() is None, f"the job ended before it could be killed:\n{log.read_text()[-3000:]}"
    assert in_flight, f"no batch was seen in progress after a committed one:\n{log.read_text()[-3000:]}"
    time.sleep(0.5)  # inside the batch's writes (a batch of 800 records takes seconds)
    os.killpg(job.pid, signal.SIGKILL)
    job.wait()
    assert in_flight - committed_batches(own.check_point_location), "the batch finished before the kill"

    start = log.stat().st_size
    job = start_job(own, "streaming_job.py", "--trigger", "available-now", log=log)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and job.poll() is None:
        if "landed by the drain" in log.read_bytes()[start:].decode(errors="replace"):
            break
        time.sleep(0.2)
    assert job.poll() is None, f"the job ended before it could be killed:\n{log.read_text()[-3000:]}"
    time.sleep(1.5)  # inside the recomputation
    os.killpg(job.pid, signal.SIGKILL)
    job.wait()
    assert pending_hours(own)
    assert drain_state(own, topics_end(own)) == DRAIN_HERE  # past the topics' end, and still Spark has work

    run_job(own, "streaming_job.py", "--trigger", "available-now", log=log)
    assert not pending_hours(own)
    raw = table_rows(spark, own, "raw_clicks")
    assert len(raw) == len({(r.kafka_partition, r.kafka_offset) for r in raw}) == 4208
    expected = expected_tables(CLICK_FILES, SAMPLE / "articles_metadata.csv")
    assert aggregates(spark, own) == expected

    run_job(own, "recompute_hours.py", "--from", "2017-10-01T00", "--to", "2017-10-02T23", log=log)  # a backfill
    assert aggregates(spark, own) == expected
    report = check_tables(own)
    assert report.problems == [] and report.raw_clicks == 4208, report
    assert report.states and report.balanced_hours == sorted(report.states), report.states
    view = read_state(own).tables
    assert view.error is None, view.error
    tables = {table.name: table for table in view.data}
    assert tables["raw_clicks"].rows == 4208 and tables["articles"].rows == 551
    assert tables["raw_clicks"].location.startswith(str(own.parquet_destination_path))
    if store != "local":
        assert not (tmp_path / "pipeline" / "lake").exists()  # nothing landed on the local disk


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small file system to fill it needs root")
def test_an_unwritable_or_full_destination_stops_the_job_clearly_and_the_checkpoint_stays(
    kafka: Service, metastore: Service, settings: Settings, spark: SparkSession, tmp_path: Path
) -> None:
    own = own_pipeline(settings, tmp_path / "pipeline")
    lake, checkpoint, log = own.parquet_destination_path.local_path, own.check_point_location, tmp_path / "jobs.log"
    lake.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "clickstream-test-lake", str(lake)], check=True)
    try:
        first, second = CLICK_FILES[:2]
        for path in (first, SAMPLE / "articles_metadata.csv"):
            shutil.copy(path, own.producer_data_root_directory / path.name)
        publish(own)
        run_job(own, "streaming_job.py", "--trigger", "available-now", log=log)
        committed = committed_batches(checkpoint)
        shutil.copy(second, own.producer_data_root_directory / second.name)
        publish(own)

        # read-only folders (permission bits)
        folders = [lake, *(path for path in lake.rglob("*") if path.is_dir())]
        for folder in folders:
            folder.chmod(0o555)
        code, output = failing_job(own, log, obey_file_permissions=True)
        for folder in folders:
            folder.chmod(0o755)
        assert code == 5, output[-4000:]
        assert f"PARQUET_DESTINATION_PATH={lake}: cannot write" in output and "Permission denied" in output, output
        assert committed_batches(checkpoint) == committed

        # a full file system
        full = shutil.disk_usage(lake).used + 8192
        subprocess.run(["mount", "-o", f"remount,size={full}", str(lake)], check=True)
        code, output = failing_job(own, log)
        assert code == 5, output[-4000:]
        assert "No space left on device" in output and f"PARQUET_DESTINATION_PATH={lake}" in output, output
        assert committed_batches(checkpoint) == committed

        # room again: the same job, restarted, writes the batch it could not write before
        subprocess.run(["mount", "-o", "remount,size=64m", str(lake)], check=True)
        run_job(own, "streaming_job.py", "--trigger", "available-now", log=log)
        assert len(committed_batches(checkpoint)) > len(committed)
        raw = table_rows(spark, own, "raw_clicks")
        assert len(raw) == len({(r.kafka_partition, r.kafka_offset) for r in raw}) == 1883 + 1415
        assert aggregates(spark, own) == expected_tables([first, second], SAMPLE / "articles_metadata.csv")
    finally:
        subprocess.run(["umount", "--lazy", str(lake)], check=False)
