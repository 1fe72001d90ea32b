"""The producer on the real broker: exactly once per file, across re-runs and a SIGKILL mid-file."""

from __future__ import annotations

import csv
import json
import logging
import os
import shutil
import signal
import time
from dataclasses import replace
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource  # type: ignore[attr-defined]

from app.producer.ledger import read_ledger
from app.producer.publisher import PublishOptions, publish
from app.producer.report import ALREADY_PUBLISHED, PUBLISHED, REFUSED, PublishReport
from app.runtime.service import Service
from app.schemas import HEADER_SOURCE_FILE
from app.settings import REPO_ROOT, Settings
from tests.conftest import own_pipeline
from tests.integration.kafka_helpers import count_by_header, header, read_all
from tests.integration.producer_helpers import (
    BIG_FILE,
    CLICK_HEADER,
    add_a_big_click_file,
    assert_each_row_once,
    copy_sample,
    csv_rows,
    producer_cli,
    publishing_the_big_file,
    resume,
    wait_until_part_of_the_big_file_is_sent,
    with_a_big_click_file,
)

SAMPLE = REPO_ROOT / "app" / "data"


@pytest.fixture
def own_topics(settings: Settings, tmp_path: Path) -> Settings:
    """The session's settings with topics, transactional id and data folder of this test alone."""
    return own_pipeline(settings, tmp_path)


def test_publishing_the_sample_twice_leaves_each_row_once(kafka: Service, own_topics: Settings) -> None:
    settings = own_topics
    expected = copy_sample(settings)

    first = publish(settings)
    assert {r.file: r.status for r in first.files} == dict.fromkeys(expected, PUBLISHED)
    assert {r.file: r.rows for r in first.files} == expected
    assert first.files[0].file == "articles_metadata.csv"  # metadata before clicks

    second = publish(settings)
    assert {r.file: r.status for r in second.files} == dict.fromkeys(expected, ALREADY_PUBLISHED)

    clicks = count_by_header(read_all(settings, settings.kafka_topic), HEADER_SOURCE_FILE)
    articles = count_by_header(read_all(settings, settings.kafka_metadata_topic), HEADER_SOURCE_FILE)
    assert {**clicks, **articles} == expected

    ledger = read_ledger(settings)
    assert {name: entry.rows for name, entry in ledger.items()} == expected
    for name, entry in ledger.items():
        first_offset_count = sum(last - first + 1 for first, last in entry.offsets.values())
        assert first_offset_count >= expected[name]  # offsets span the file's messages (plus txn markers)


def test_message_shape_key_and_headers(kafka: Service, own_topics: Settings) -> None:
    settings = own_topics
    copy_sample(settings)
    publish(settings, PublishOptions(kinds=[]))  # creates the topics only
    publish(settings)
    messages = read_all(settings, settings.kafka_topic)
    with open(SAMPLE / "clicks_hour_000.csv", newline="") as handle:
        first_row = next(csv.DictReader(handle))
    message = next(
        m
        for m in messages
        if header(m, "source_line") == "2" and header(m, HEADER_SOURCE_FILE) == "clicks_hour_000.csv"
    )
    assert json.loads(message.value()) == {k: int(v) for k, v in first_row.items()}
    assert message.key() == first_row["session_id"].encode()
    assert header(message, "schema_version") == "1" and header(message, "file_version") == "1"
    # a session's clicks all sit in one partition
    partitions: dict[bytes, set[int]] = {}
    for m in messages:
        partitions.setdefault(m.key(), set()).add(m.partition())
    assert all(len(p) == 1 for p in partitions.values())


def test_bad_rows_go_to_rejects_with_their_line_and_good_rows_flow(kafka: Service, own_topics: Settings) -> None:
    settings = own_topics
    good = "0,1506825423271737,1506825423000,2,157541,1506826828020,4,3,20,1,20,2"
    lines = [CLICK_HEADER, good, "1,2,3", good.replace("157541", "x1"), good, "", good.replace(",4,3,", ",,3,")]
    path = settings.producer_data_root_directory / "clicks_hour_007.csv"
    path.write_bytes(("\n".join(lines) + "\n").encode() + b"9,9,9,9,\xff,9,9,9,9,9,9,9\n")
    (settings.producer_data_root_directory / "clicks_hour_008.csv").write_text(CLICK_HEADER + "\n")  # header only

    result = publish(settings)
    by_file = {r.file: r for r in result.files}
    assert (by_file["clicks_hour_007.csv"].rows, by_file["clicks_hour_007.csv"].rejected) == (2, 5)
    assert (by_file["clicks_hour_008.csv"].status, by_file["clicks_hour_008.csv"].rows) == (PUBLISHED, 0)
    assert len(read_all(settings, settings.kafka_topic)) == 2

    rejects = [json.loads(m.value()) for m in read_all(settings, settings.kafka_rejects_topic)]
    assert [(r["file"], r["line"]) for r in rejects] == [("clicks_hour_007.csv", n) for n in (3, 4, 6, 7, 8)]
    reasons = {r["line"]: r["reason"] for r in rejects}
    assert reasons[3] == "3 columns where the header has 12"
    assert reasons[4] == "click_article_id is not an integer: 'x1'"
    assert reasons[6] == "empty line"
    assert reasons[7] == "missing value for click_environment"
    assert reasons[8].startswith("bytes that are not UTF-8")
    assert read_ledger(settings)["clicks_hour_008.csv"].rows == 0  # marked done


def test_wrong_header_refuses_only_that_file(kafka: Service, own_topics: Settings) -> None:
    settings = own_topics
    copy_sample(settings)
    (settings.producer_data_root_directory / "clicks_hour_009.csv").write_text("user_id,session_id\n1,2\n")
    result = publish(settings)
    refused = {r.file: r.message for r in result.refused}
    assert list(refused) == ["clicks_hour_009.csv"]
    assert "header lacks required column(s) session_start, session_size" in refused["clicks_hour_009.csv"]
    assert len(result.with_status(PUBLISHED)) == 4


def test_changed_file_is_refused_unless_published_as_new_version(kafka: Service, own_topics: Settings) -> None:
    settings = own_topics
    path = settings.producer_data_root_directory / "clicks_hour_001.csv"
    shutil.copy(SAMPLE / "clicks_hour_001.csv", path)
    publish(settings)
    with open(path, "a") as handle:
        handle.write("99,1506825423271737,1506825423000,2,157541,1506826828020,4,3,20,1,20,2\n")  # one more click
    refused = publish(settings)
    assert refused.files[0].status == REFUSED and "changed after it was published" in refused.files[0].message
    again = publish(settings, PublishOptions(new_versions={"clicks_hour_001.csv"}))
    assert (again.files[0].status, again.files[0].version) == (PUBLISHED, 2)
    assert len(read_all(settings, settings.kafka_topic)) == 2 * csv_rows(SAMPLE / "clicks_hour_001.csv") + 1


def test_a_poll_of_published_files_reads_none_of_them_until_one_changes(
    kafka: Service, own_topics: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sensor's dry run: a file whose size and modification time are those it was published
    with is not read (nor hashed) again; a new modification time gets it read, and a changed
    content refused."""
    import app.producer.publisher as publisher
    from app.producer.parsing import FileContent, read_file

    settings = own_topics
    folder = settings.producer_data_root_directory
    for name in ("clicks_hour_001.csv", "clicks_hour_002.csv"):
        shutil.copy(SAMPLE / name, folder / name)
    publish(settings)
    reads: list[str] = []

    def counted_read(path: Path) -> FileContent:
        reads.append(path.name)
        return read_file(path)

    monkeypatch.setattr(publisher, "read_file", counted_read)
    polled = publish(settings, PublishOptions(dry_run=True))
    assert [f.status for f in polled.files] == [ALREADY_PUBLISHED] * 2 and reads == []
    path = folder / "clicks_hour_002.csv"
    touched = path.stat()
    text = path.read_text()
    path.write_text(text[:-2] + ("7\n" if text[-2] != "7" else "8\n"))  # same size, other content
    # another modification time, in the past: a file modified in the last seconds is left to settle
    os.utime(path, ns=(touched.st_atime_ns, touched.st_mtime_ns - 60_000_000_000))
    polled = publish(settings, PublishOptions(dry_run=True))
    assert [f.status for f in polled.files] == [ALREADY_PUBLISHED, REFUSED] and reads == ["clicks_hour_002.csv"]
    assert "changed after it was published" in polled.files[1].message


def test_the_same_content_under_a_second_name_is_refused(kafka: Service, own_topics: Settings) -> None:
    settings = own_topics
    folder = settings.producer_data_root_directory
    shutil.copy(SAMPLE / "clicks_hour_001.csv", folder / "clicks_hour_001.csv")
    shutil.copy(SAMPLE / "clicks_hour_001.csv", folder / "clicks_hour_051.csv")  # in the same run
    first = publish(settings)
    assert [(f.file, f.status) for f in first.files] == [
        ("clicks_hour_001.csv", PUBLISHED),
        ("clicks_hour_051.csv", REFUSED),
    ]
    assert "same content as clicks_hour_001.csv" in first.files[1].message and "--new-version" in first.files[1].message
    shutil.copy(SAMPLE / "clicks_hour_001.csv", folder / "clicks_hour_052.csv")  # in a later run
    later = publish(settings)
    assert {f.file: f.status for f in later.files}["clicks_hour_052.csv"] == REFUSED
    assert len(read_all(settings, settings.kafka_topic)) == csv_rows(SAMPLE / "clicks_hour_001.csv")
    meant = publish(settings, PublishOptions(new_versions={"clicks_hour_051.csv"}))
    assert {f.file: f.status for f in meant.files}["clicks_hour_051.csv"] == PUBLISHED


def test_sigkill_in_the_middle_of_a_file_then_rerun_leaves_each_row_once(kafka: Service, own_topics: Settings) -> None:
    settings = own_topics
    rows = with_a_big_click_file(settings)
    victim = producer_cli(settings, "publish")
    try:
        assert wait_until_part_of_the_big_file_is_sent(settings, victim) >= 20_000
        victim.send_signal(signal.SIGKILL)
        victim.wait(30)
    finally:
        if victim.poll() is None:
            victim.kill()

    rerun = producer_cli(settings, "publish")
    output, _ = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, output[-3000:]
    assert_each_row_once(settings, rows)


def test_a_large_run_in_shards_publishes_each_file_once_as_one_process_does(
    kafka: Service, own_topics: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "app.producer.publisher")
    sharded = replace(own_topics, producer_processes=2)
    rows = with_a_big_click_file(sharded)  # 18 MB: more than PARALLEL_MIN_BYTES
    folder = sharded.producer_data_root_directory
    shutil.copy(folder / "clicks_hour_001.csv", folder / "clicks_hour_061.csv")  # the same content again
    good = "0,1506825423271737,1506825423000,2,157541,1506826828020,4,3,20,1,20,2"
    (folder / "clicks_hour_062.csv").write_text("\n".join([CLICK_HEADER, good, "1,2,3", good]) + "\n")
    rows["clicks_hour_062.csv"] = 2
    one_process = replace(own_pipeline(sharded, tmp_path / "one"), producer_processes=1)
    shutil.copytree(folder, one_process.producer_data_root_directory, dirs_exist_ok=True)

    in_shards = publish(sharded)
    assert "in 2 processes side by side" in caplog.text
    alone = publish(one_process)

    def outcome(result: PublishReport) -> list[tuple[str, str, int, int, int]]:
        return [(r.file, r.status, r.version, r.rows, r.rejected) for r in result.files]

    assert outcome(in_shards) == outcome(alone)
    assert {r.file: r.status for r in in_shards.files}["clicks_hour_061.csv"] == REFUSED  # a copy
    assert in_shards.files[0].file == "articles_metadata.csv"
    for settings in (sharded, one_process):
        assert_each_row_once(settings, rows)
        rejects = [json.loads(m.value()) for m in read_all(settings, settings.kafka_rejects_topic)]
        assert [(r["file"], r["line"]) for r in rejects] == [("clicks_hour_062.csv", 3)]
    again = publish(sharded)
    assert {r.file: r.status for r in again.files if r.file in rows} == dict.fromkeys(rows, ALREADY_PUBLISHED)


def test_a_run_in_shards_killed_whole_mid_file_then_rerun_leaves_each_row_once(
    kafka: Service, own_topics: Settings
) -> None:
    settings = replace(own_topics, producer_processes=2)
    rows = with_a_big_click_file(settings)
    rows.update(add_a_big_click_file(settings, "clicks_hour_051.csv", 61))  # another size: the other shard
    victim = producer_cli(settings, "publish", own_group=True)
    try:
        wait_until_part_of_the_big_file_is_sent(settings, victim, (BIG_FILE, "clicks_hour_051.csv"))
    finally:
        os.killpg(victim.pid, signal.SIGKILL)  # both shards, each in the middle of its transaction
        victim.wait(30)

    # the rerun in one process: only its fencing of every shard's id ends the killed shard's open
    # transaction, which would otherwise hold the later records of its partitions back from
    # read_committed readers for 10 minutes (transaction.timeout.ms)
    rerun = producer_cli(replace(settings, producer_processes=1), "publish")
    output, _ = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, output[-3000:]
    assert_each_row_once(settings, rows)


def test_broker_sigkilled_while_a_file_is_published_then_restarted_leaves_each_row_once(
    kafka: Service, own_topics: Settings
) -> None:
    settings = own_topics
    rows = with_a_big_click_file(settings)
    producer = publishing_the_big_file(settings)
    broker_pid = kafka.processes()[0].read_pid()
    assert broker_pid is not None
    os.killpg(broker_pid, signal.SIGKILL)
    resume(producer)  # it meets the broker gone in the middle of the file
    time.sleep(3)
    kafka.start()  # the pid file is stale now: a new broker on the same data

    output, _ = producer.communicate(timeout=600)
    if producer.returncode != 0:  # it gave up while the broker was away: what an Airflow retry does
        retry = producer_cli(settings, "publish")
        retried, _ = retry.communicate(timeout=600)
        assert retry.returncode == 0, output[-2000:] + retried[-3000:]
    assert_each_row_once(settings, rows)


def test_file_still_being_written_is_skipped_until_stable(kafka: Service, own_topics: Settings) -> None:
    settings = replace(own_topics, producer_file_stable_seconds=30.0)
    shutil.copy(SAMPLE / "clicks_hour_002.csv", settings.producer_data_root_directory / "clicks_hour_002.csv")
    result = publish(settings)
    assert [r.status for r in result.files] == ["skipped_still_being_written"]
    assert read_all(settings, settings.kafka_topic) == []
    later = publish(replace(settings, producer_file_stable_seconds=0.0))
    assert [r.status for r in later.files] == [PUBLISHED]


def test_paced_publication_commits_as_it_goes_and_stays_exactly_once(kafka: Service, own_topics: Settings) -> None:
    rows = csv_rows(SAMPLE / "clicks_hour_002.csv")
    # paced to last about 3 s: a commit every second (PACED_COMMIT_SECONDS) lands parts of it
    settings = replace(own_topics, producer_item_wait_time=3.0 / rows)
    shutil.copy(SAMPLE / "clicks_hour_002.csv", settings.producer_data_root_directory / "clicks_hour_002.csv")
    result = publish(settings)
    assert (result.files[0].status, result.files[0].rows) == (PUBLISHED, rows)
    ledger_records = read_all(settings, settings.kafka_ledger_topic)
    states = [json.loads(m.value())["status"] for m in ledger_records]
    assert "in_progress" in states and states[-1] == "published"  # committed part by part
    assert len(read_all(settings, settings.kafka_topic)) == rows


def test_replay_paces_clicks_by_their_own_time(kafka: Service, own_topics: Settings) -> None:
    settings = own_topics
    source = SAMPLE / "clicks_hour_002.csv"
    shutil.copy(source, settings.producer_data_root_directory / source.name)
    with open(source, newline="") as handle:
        stamps = [int(row["click_timestamp"]) for row in csv.DictReader(handle)]
    span_seconds = (max(stamps) - stamps[0]) / 1000
    speedup = span_seconds / 2.0  # the whole file should take about two seconds
    started = time.monotonic()
    result = publish(settings, PublishOptions(replay_speedup=speedup))
    elapsed = time.monotonic() - started
    assert result.files[0].rows == len(stamps)
    assert elapsed >= 1.5, f"replay took {elapsed:.2f} s, expected about 2 s"
    assert len(read_all(settings, settings.kafka_topic)) == len(stamps)


def test_command_line_dry_run_publish_ledger_and_exit_codes(kafka: Service, own_topics: Settings) -> None:
    settings = own_topics
    expected = copy_sample(settings)

    dry = producer_cli(settings, "publish", "--dry-run", "--json")
    output, _ = dry.communicate(timeout=120)
    assert dry.returncode == 0, output[-2000:]
    report = json.loads(output[output.index("{") :])
    assert {f["file"]: (f["status"], f["rows"]) for f in report["files"]} == {
        name: ("would_publish", rows) for name, rows in expected.items()
    }

    real = producer_cli(settings, "publish")
    output, _ = real.communicate(timeout=120)
    assert real.returncode == 0, output[-2000:]
    assert "total" in output and f"{sum(expected.values()):,}" in output  # the summary table
    assert len(read_all(settings, settings.kafka_topic)) == sum(expected.values()) - expected["articles_metadata.csv"]

    ledger = producer_cli(settings, "ledger", "--json")
    output, _ = ledger.communicate(timeout=120)
    assert ledger.returncode == 0
    assert {name: entry["rows"] for name, entry in json.loads(output[output.index("{") :]).items()} == expected

    (settings.producer_data_root_directory / "clicks_hour_099.csv").write_text("nothing,useful\n")
    refused = producer_cli(settings, "publish")
    output, _ = refused.communicate(timeout=120)
    assert refused.returncode == 2
    assert "header lacks required column(s)" in output


def test_topics_are_created_from_settings(kafka: Service, own_topics: Settings) -> None:
    settings = replace(own_topics, kafka_topic_partitions=4)
    publish(settings, PublishOptions(kinds=[]))
    admin = AdminClient({"bootstrap.servers": settings.kafka_servers})
    metadata = admin.list_topics(timeout=10)
    assert len(metadata.topics[settings.kafka_topic].partitions) == 4
    assert len(metadata.topics[settings.kafka_metadata_topic].partitions) == 4
    assert len(metadata.topics[settings.kafka_ledger_topic].partitions) == 1
    resources = [
        ConfigResource("topic", name)
        for name in (settings.kafka_topic, settings.kafka_metadata_topic, settings.kafka_ledger_topic)
    ]
    configs = {r.name: f.result(timeout=10) for r, f in admin.describe_configs(resources).items()}
    assert configs[settings.kafka_metadata_topic]["cleanup.policy"].value == "compact"
    assert configs[settings.kafka_ledger_topic]["cleanup.policy"].value == "compact"
    assert configs[settings.kafka_topic]["cleanup.policy"].value == "delete"
    assert configs[settings.kafka_topic]["min.insync.replicas"].value == str(settings.kafka_min_insync_replicas)


def test_a_refusal_is_recorded_once_not_read_again_until_the_file_changes_and_gone_once_published(
    kafka: Service, own_topics: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Refused files (a link out of the folder, a header-less binary file) are listed with a fix
    and recorded in the ledger; the next poll refuses them again without reading them; a changed
    file is looked at again, and once it publishes (or is removed) its refusal is gone."""
    import app.producer.publisher as publisher
    from app.producer.ledger import read_ledger_state
    from app.producer.parsing import FileContent, read_file

    settings = own_topics
    folder = settings.producer_data_root_directory
    shutil.copy(SAMPLE / "clicks_hour_001.csv", folder / "clicks_hour_001.csv")
    binary = folder / "clicks_hour_002.csv"
    binary.write_bytes(bytes(range(256)) * 4)
    (folder / "clicks_hour_003.csv").symlink_to(SAMPLE.parent / "__init__.py")
    first = publish(settings)
    assert {r.file: r.status for r in first.files} == {
        "clicks_hour_003.csv": REFUSED,
        "clicks_hour_001.csv": PUBLISHED,
        "clicks_hour_002.csv": REFUSED,
    }
    fixes = {item["file"]: item["fix"] for item in first.to_dict()["refused"]}
    assert "fix its header" in fixes["clicks_hour_002.csv"] and "remove the link" in fixes["clicks_hour_003.csv"]
    refusals = read_ledger_state(settings).refusals
    assert set(refusals) == {"clicks_hour_002.csv", "clicks_hour_003.csv"}
    assert "header lacks required column(s)" in refusals["clicks_hour_002.csv"].reason
    assert set(read_ledger(settings)) == {"clicks_hour_001.csv"}  # the files' entries alone

    reads: list[str] = []

    def counted_read(path: Path) -> FileContent:
        reads.append(path.name)
        return read_file(path)

    monkeypatch.setattr(publisher, "read_file", counted_read)
    for dry_run in (True, False):
        again = publish(settings, PublishOptions(dry_run=dry_run))
        assert [r.status for r in again.files] == [REFUSED, ALREADY_PUBLISHED, REFUSED] and reads == []
        assert again.to_dict()["refused"] == first.to_dict()["refused"]

    shutil.copy(SAMPLE / "clicks_hour_002.csv", binary)  # fixed: a real click file now
    os.utime(binary, ns=(binary.stat().st_atime_ns, binary.stat().st_mtime_ns - 60_000_000_000))
    fixed = publish(settings)
    assert {r.file: r.status for r in fixed.files}["clicks_hour_002.csv"] == PUBLISHED
    assert reads == ["clicks_hour_002.csv"]
    assert set(read_ledger_state(settings).refusals) == {"clicks_hour_003.csv"}
    (folder / "clicks_hour_003.csv").unlink()  # a refused file removed is refused no more
    publish(settings)
    assert read_ledger_state(settings).refusals == {}


def test_each_message_lands_where_the_clients_partitioner_puts_its_key_and_the_ledger_bounds_them(
    kafka: Service, own_topics: Settings
) -> None:
    """The bulk path picks each message's partition itself (CRC-32 of the key, as librdkafka's
    default partitioner) so that only the first and last message of each partition report their
    delivery: a message sent with no partition goes to the same one, and every message of the file
    lies inside the ledger's offset range for its partition, whose ends are its own messages."""
    import zlib

    from confluent_kafka import Producer

    from tests.integration.kafka_helpers import create_topic

    settings = own_topics
    copy_sample(settings)
    publish(settings)
    partitions = settings.kafka_topic_partitions
    messages = [m for m in read_all(settings, settings.kafka_topic) if m.error() is None]
    assert messages and all(m.partition() == zlib.crc32(m.key()) % partitions for m in messages)
    ledger = read_ledger(settings)
    for name, entry in ledger.items():
        if entry.topic != settings.kafka_topic:
            continue
        offsets: dict[str, list[int]] = {}
        for message in messages:
            if header(message, HEADER_SOURCE_FILE) == name:
                offsets.setdefault(str(message.partition()), []).append(message.offset())
        assert entry.offsets == {partition: [min(got), max(got)] for partition, got in offsets.items()}, name

    topic = create_topic(settings, partitions=7)
    placed: dict[bytes | None, int | None] = {}
    producer = Producer({"bootstrap.servers": settings.kafka_servers})
    keys = [str(1506825423271737 + 7919 * n).encode() for n in range(200)]
    for key in keys:
        producer.produce(topic, b"{}", key, on_delivery=lambda _, m: placed.__setitem__(m.key(), m.partition()))
    assert producer.flush(30) == 0
    assert placed == {key: zlib.crc32(key) % 7 for key in keys}  # the client's own choice


def test_a_file_changed_between_its_hash_and_its_publication_is_aborted_and_published_next_run(
    kafka: Service, own_topics: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file is hashed in one pass and parsed in another: one that changes in between is not
    published half old, half new. Its transaction is aborted, the other files go on, and the next
    run publishes it as it is now."""
    from app.producer import publisher
    from app.producer.parsing import FileContent, read_file
    from app.producer.report import SKIPPED_UNSTABLE

    settings = own_topics
    expected = copy_sample(settings)
    target = settings.producer_data_root_directory / "clicks_hour_001.csv"

    def hashed_then_changed(path: Path) -> FileContent:
        content = read_file(path)
        if path == target:
            with target.open("a") as handle:
                handle.write(target.read_text().splitlines()[1] + "\n")
        return content

    monkeypatch.setattr(publisher, "read_file", hashed_then_changed)
    first = publish(settings)
    statuses = {r.file: r.status for r in first.files}
    assert statuses.pop(target.name) == SKIPPED_UNSTABLE
    assert set(statuses.values()) == {PUBLISHED}
    on_topic = count_by_header(read_all(settings, settings.kafka_topic), HEADER_SOURCE_FILE)
    assert target.name not in on_topic  # nothing of it committed

    monkeypatch.undo()
    second = publish(settings)
    assert {r.file: r.status for r in second.files}[target.name] == PUBLISHED
    on_topic = count_by_header(read_all(settings, settings.kafka_topic), HEADER_SOURCE_FILE)
    assert on_topic[target.name] == expected[target.name] + 1
