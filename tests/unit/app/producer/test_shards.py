"""Splitting a run's files into shards: sizes balanced, copies together, order kept, small or
paced runs in one process."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from app.producer import shards
from app.producer.discovery import DataFile, FileKind
from app.producer.publisher import Publisher, PublishError, PublishOptions, publish_shard
from app.producer.report import PUBLISHED, FileReport
from app.settings import load_settings


def _file(name: str, kind: FileKind = FileKind.CLICKS) -> DataFile:
    return DataFile(Path(name), name, kind, "topic")


def test_shards_balance_bytes_keep_each_size_together_and_keep_the_order() -> None:
    files = [_file("articles_metadata.csv", FileKind.ARTICLES), *(_file(f"clicks_hour_00{h}.csv") for h in range(6))]
    sizes = {
        "articles_metadata.csv": 100,
        "clicks_hour_000.csv": 30,
        "clicks_hour_001.csv": 40,
        "clicks_hour_002.csv": 30,  # a copy of 000 would have its size: same shard
        "clicks_hour_003.csv": 20,
        "clicks_hour_004.csv": 50,
        "clicks_hour_005.csv": 0,  # published and unchanged: costs nothing
    }
    parts = shards.shard_files(files, sizes, 2)
    names = [[file.name for file in part] for part in parts]
    assert sorted(name for part in names for name in part) == sorted(sizes)
    assert any({"clicks_hour_000.csv", "clicks_hour_002.csv"} <= set(part) for part in names)
    assert all(part == sorted(part, key=[file.name for file in files].index) for part in names)  # articles first
    loads = [sum(sizes[name] for name in part) for part in names]
    assert max(loads) - min(loads) <= 30
    assert shards.shard_files(files, sizes, 1) == [files]
    assert len(shards.shard_files(files[:2], sizes, 4)) == 2  # never an empty shard


def test_process_count_zero_is_one_per_core_at_most_four(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings({})
    monkeypatch.setattr("os.cpu_count", lambda: 16)
    assert shards.process_count(replace(settings, producer_processes=0)) == shards.MAX_AUTO_PROCESSES
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    assert shards.process_count(replace(settings, producer_processes=0)) == 2
    assert shards.process_count(replace(settings, producer_processes=7)) == 7
    assert shards.shard_transactional_id(settings, 0) == settings.producer_transactional_id
    assert shards.shard_transactional_id(settings, 2) == f"{settings.producer_transactional_id}-shard-2"


def test_child_environment_carries_the_shard_id_and_the_kafka_secrets() -> None:
    settings = replace(load_settings({}), kafka_sasl_password="s3cret")
    environment = shards.child_environment(settings, 3)
    assert environment["PRODUCER_TRANSACTIONAL_ID"] == f"{settings.producer_transactional_id}-shard-3"
    assert environment["KAFKA_SASL_PASSWORD"] == "s3cret"
    assert load_settings(environment).kafka_servers == settings.kafka_servers


@pytest.mark.parametrize(
    ("change", "options", "expected"),
    [
        ({}, PublishOptions(), 2),
        ({"producer_processes": 1}, PublishOptions(), 1),
        ({"producer_item_wait_time": 0.01}, PublishOptions(), 1),  # paced: one process, in order
        ({}, PublishOptions(replay_speedup=60.0), 1),
        ({}, PublishOptions(dry_run=True), 1),
    ],
)
def test_only_a_large_unpaced_run_that_sends_is_split(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: dict[str, object], options: PublishOptions, expected: int
) -> None:
    monkeypatch.setattr(shards, "PARALLEL_MIN_BYTES", 1000)
    files = []
    for hour, size in enumerate((600, 700)):
        path = tmp_path / f"clicks_hour_00{hour}.csv"
        path.write_bytes(b"x" * size)
        files.append(DataFile(path, path.name, FileKind.CLICKS, "topic"))
    settings = replace(load_settings({}), **{"producer_processes": 2, **change})  # type: ignore[arg-type]
    assert len(Publisher(settings)._shards(files, {}, options)) == expected
    assert len(Publisher(settings)._shards(files[:1], {}, PublishOptions())) == 1
    monkeypatch.setattr(shards, "PARALLEL_MIN_BYTES", 1301)
    assert len(Publisher(settings)._shards(files, {}, PublishOptions())) == 1  # too little to read


def test_a_shard_child_reads_its_request_and_answers_a_line_per_file_or_the_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    files = [_file("clicks_hour_001.csv"), _file("clicks_hour_002.csv")]
    options = PublishOptions(new_versions={"clicks_hour_002.csv"}, kinds=[FileKind.CLICKS])
    seen: list[tuple[list[DataFile], PublishOptions]] = []

    def publish_files(self: Publisher, got: list[DataFile], got_options: PublishOptions) -> Iterator[FileReport]:
        seen.append((got, got_options))
        yield FileReport(got[0].name, "clicks", "topic", PUBLISHED, version=1, rows=3, offsets={"0": [5, 7]})
        raise PublishError("clicks_hour_002.csv: publishing failed")

    monkeypatch.setattr(Publisher, "publish_files", publish_files)
    out = io.StringIO()
    assert publish_shard(load_settings({}), shards.request(files, options.to_plain()), out) == 1
    assert seen == [(files, options)]
    first, second = out.getvalue().splitlines()
    assert shards.read_answer(first) == FileReport(
        "clicks_hour_001.csv", "clicks", "topic", PUBLISHED, version=1, rows=3, offsets={"0": [5, 7]}
    )
    assert shards.read_answer(second) == "PublishError: clicks_hour_002.csv: publishing failed"
    for stray in ("a library's words\n", "[1, 2]\n", '{"report": 3}\n', "\n"):
        assert shards.read_answer(stray) is None  # not an answer: the parent logs it and reads on
