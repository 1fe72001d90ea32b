"""The check job's comparison and the checkpoint helpers, on hand-made counts and files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from app.checkpoint import (
    CheckpointBusyError,
    StreamLock,
    add_pending_hours,
    clear_pending_hours,
    committed_offsets,
    offsets_behind,
    pending_hours,
    running_stream,
)
from app.producer.ledger import LedgerEntry
from app.settings import Settings
from app.table_checks import Landed, find_disagreements
from tests.conftest import isolated_settings


def entry(file: str, rows: int, offsets: dict[str, list[int]], version: int = 1) -> LedgerEntry:
    return LedgerEntry(
        file=file, kind="clicks", topic="clicks", version=version, size=1, sha256="x", status="published",
        lines_done=rows + 1, rows=rows, rejected=0, offsets=offsets,
    )  # fmt: skip


HOUR = ("2017-10-01", 3)
GOOD = {
    "raw": {HOUR: 10},
    "aggregates": {"article_hourly": {HOUR: 10}, "category_hourly": {HOUR: 10}, "context_hourly": {HOUR: 10}},
    "ledger": [entry("clicks_hour_003.csv", 10, {"0": [0, 4], "1": [0, 4]})],
    "landed": {"clicks": {("clicks_hour_003.csv", 1): {0: Landed(5, 0, 4), 1: Landed(5, 0, 4)}}},
    "checkpoint": {"clicks": {0: 6, 1: 6}},
    "ends": {"clicks": {0: 6, 1: 6}},
}


def disagreements(**changes: object) -> list[str]:
    values = {**GOOD, **changes}
    return find_disagreements(
        values["raw"],  # type: ignore[arg-type]
        values["aggregates"],  # type: ignore[arg-type]
        values["ledger"],  # type: ignore[arg-type]
        values["landed"],  # type: ignore[arg-type]
        values["checkpoint"],  # type: ignore[arg-type]
        values["ends"],  # type: ignore[arg-type]
    )


def test_consistent_tables_have_no_disagreement() -> None:
    assert disagreements() == []


def test_an_aggregate_that_lost_clicks_is_named_with_its_hour() -> None:
    aggregates = {**GOOD["aggregates"], "category_hourly": {HOUR: 9}}  # type: ignore[dict-item]
    assert disagreements(aggregates=aggregates) == [
        "2017-10-01 hour 3: raw_clicks has 10 rows, category_hourly adds up to 9 clicks"
    ]


def test_an_hour_missing_from_the_raw_table_is_a_disagreement() -> None:
    assert "raw_clicks has 0 rows" in disagreements(raw={})[0]


def test_raw_rows_missing_for_a_published_file_are_named() -> None:
    landed = {"clicks": {("clicks_hour_003.csv", 1): {0: Landed(5, 0, 4), 1: Landed(4, 0, 3)}}}
    assert disagreements(landed=landed) == [
        "clicks_hour_003.csv (version 1, topic clicks): the ledger says 10 rows were published, the raw table holds 9"
    ]


def test_rows_outside_the_published_offsets_and_a_topic_that_lost_them() -> None:
    landed = {"clicks": {("clicks_hour_003.csv", 1): {0: Landed(5, 1, 5), 1: Landed(5, 0, 4)}}}
    assert "outside the published range 0..4" in disagreements(landed=landed)[0]
    problems = disagreements(ends={"clicks": {0: 6, 1: 3}})
    assert problems == [
        "clicks_hour_003.csv (version 1, topic clicks): partition 1 ends at 3, before the published offset 4"
    ]


def test_a_file_the_stream_has_not_passed_yet_is_not_checked() -> None:
    assert disagreements(landed={}, checkpoint={"clicks": {0: 6, 1: 2}}) == []
    assert disagreements(landed={}, checkpoint={}) == []


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return isolated_settings(tmp_path)


def write_batch(checkpoint: Path, batch: int, offsets: dict[str, dict[str, int]], committed: bool) -> None:
    (checkpoint / "offsets").mkdir(parents=True, exist_ok=True)
    (checkpoint / "commits").mkdir(parents=True, exist_ok=True)
    (checkpoint / "offsets" / str(batch)).write_text(f'v1\n{{"batchWatermarkMs":0}}\n{json.dumps(offsets)}')
    if committed:
        (checkpoint / "commits" / str(batch)).write_text('v1\n{"nextBatchWatermarkMs":0}')


def test_committed_offsets_are_those_of_the_last_completed_batch(settings: Settings) -> None:
    checkpoint = settings.check_point_location.local_path / "streaming"
    assert committed_offsets(settings) == {}
    write_batch(checkpoint, 0, {"clicks": {"0": 5, "1": 7}, "articles": {"0": 3}}, committed=True)
    write_batch(checkpoint, 1, {"clicks": {"0": 9, "1": 9}, "articles": {"0": 3}}, committed=False)
    offsets = committed_offsets(settings)
    assert offsets == {"clicks": {0: 5, 1: 7}, "articles": {0: 3}}
    assert offsets_behind({"clicks": {0: 9, 1: 7}, "articles": {0: 3}, "new": {0: 2}}, offsets) == {
        "clicks": 4,
        "articles": 0,
        "new": 2,
    }


def test_one_stream_per_checkpoint_and_the_lock_dies_with_its_process(settings: Settings) -> None:
    assert running_stream(settings) is None
    with StreamLock(settings, "processing-time"):
        holder = running_stream(settings)
        assert holder is not None and holder["trigger"] == "processing-time"
        # a second job, in another process, is refused with the holder's details
        probe = (
            "import sys; from app.checkpoint import StreamLock, CheckpointBusyError; "
            "from tests.conftest import isolated_settings; from pathlib import Path; "
            f"s = isolated_settings(Path({str(settings.state_dir)!r}))\n"
            "try:\n    lock = StreamLock(s, 'available-now'); lock.acquire()\n"
            "except CheckpointBusyError as e:\n    print(e); sys.exit(4)\n"
        )
        refused = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False)
        assert refused.returncode == 4, refused.stderr
        assert "another streaming job runs on the checkpoint" in refused.stdout and "processing-time" in refused.stdout
    assert running_stream(settings) is None
    # a killed holder leaves the file behind but not the lock
    holder_process = subprocess.Popen(
        [sys.executable, "-c", probe.replace("acquire()", "acquire(); print('held', flush=True); input()")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder_process.stdout is not None and holder_process.stdout.readline().strip() == "held"
    assert running_stream(settings) is not None
    holder_process.kill()
    holder_process.wait(timeout=10)
    assert running_stream(settings) is None
    with pytest.raises(CheckpointBusyError), StreamLock(settings, "x"), StreamLock(settings, "y"):
        pass


def test_pending_hours_accumulate_until_recomputed(tmp_path: Path) -> None:
    settings = isolated_settings(tmp_path / "state", {"CHECK_POINT_LOCATION": str(tmp_path / "checkpoints")})
    assert pending_hours(settings) == []
    add_pending_hours(settings, [("2017-10-01", 5), ("2017-10-01", 3)])
    add_pending_hours(settings, [("2017-10-01", 3), ("2017-09-30", 23)])  # a second micro-batch
    assert pending_hours(settings) == [("2017-09-30", 23), ("2017-10-01", 3), ("2017-10-01", 5)]
    clear_pending_hours(settings, [("2017-09-30", 23), ("2017-10-01", 3)])
    assert pending_hours(settings) == [("2017-10-01", 5)]
    clear_pending_hours(settings, [("2017-10-01", 5)])
    assert pending_hours(settings) == []
    assert list((tmp_path / "checkpoints").iterdir()) == []  # no file, no temporary left behind
