"""The producer's pieces that need no broker: the progress bar, the summary table, the pacing."""

from __future__ import annotations

import io
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from rich.console import Console

from app.producer.__main__ import BarProgress, summary_table
from app.producer.discovery import DataFile, FileKind
from app.producer.publisher import producer_config
from app.producer.report import FileReport, PublishReport
from app.settings import load_settings


def test_progress_bar_shows_file_rate_and_files_done() -> None:
    output = io.StringIO()
    console = Console(file=output, force_terminal=True, width=140)
    file = DataFile(Path("clicks_hour_001.csv"), "clicks_hour_001.csv", FileKind.CLICKS, "click_stream")
    with BarProgress(console) as bar:
        bar.file_started(file, 1001)
        bar.lines_done(500)
        bar.file_finished(FileReport("clicks_hour_001.csv", "clicks", "click_stream", "published", rows=1000))
        bar.bar.refresh()
        task = bar.bar.tasks[-1]
        assert (task.completed, task.total) == (500, 1000)
        assert bar.files == 1
    assert "clicks_hour_001.csv" in output.getvalue()


def test_summary_table_totals_published_rows() -> None:
    report = PublishReport(
        files=[
            FileReport("a.csv", "articles", "meta", "published", version=1, rows=10, rejected=1),
            FileReport("c.csv", "clicks", "clicks", "already_published", version=1, rows=99),
        ]
    )
    output = io.StringIO()
    Console(file=output, width=200).print(summary_table(report))
    text = output.getvalue()
    assert "a.csv" in text and "already_published" in text
    total_line = next(line for line in text.splitlines() if "total" in line)
    assert "10" in total_line and "99" not in total_line  # only what this run published


def test_producer_is_idempotent_transactional_and_acks_all() -> None:
    config = producer_config(load_settings(environ={"PRODUCER_TRANSACTIONAL_ID": "tx-1"}, env_file=None))
    assert config["enable.idempotence"] is True
    assert config["acks"] == "all"
    assert config["transactional.id"] == "tx-1"
    assert config["compression.type"] and config["linger.ms"] > 0


def test_pacing_keeps_to_one_message_per_wait_whatever_each_message_costs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PRODUCER_ITEM_WAIT_TIME is a pace: a message's own work counts toward its wait (a plain sleep
    after each message sent 855 a second where 1,000 were asked), and a stall is not made up for."""
    from dataclasses import replace

    from app.producer import publisher
    from app.producer.parsing import Message
    from tests.conftest import isolated_settings

    clock = [1000.0]
    # a clock of the publisher module's own: patching the `time` module's functions would also move
    # this fake clock for every other thread of the process that sleeps (a pytest worker that ran
    # integration tests before has a few), and the test failed with the clock 23,927 s on
    fake_time = SimpleNamespace(
        monotonic=lambda: clock[0], sleep=lambda seconds: clock.__setitem__(0, clock[0] + seconds), time=time.time
    )
    monkeypatch.setattr(publisher, "time", fake_time)
    paced = publisher.Publisher(replace(isolated_settings(tmp_path), producer_item_wait_time=0.01))
    for _ in range(100):
        clock[0] += 0.004  # the message's own work
        paced._pace(Message(2, b"1", b"{}"))
    assert clock[0] - 1000.0 == pytest.approx(1.0, abs=0.011)  # 100 messages at 100 a second
    clock[0] += 5.0  # a stall
    started = clock[0]
    for _ in range(10):
        paced._pace(Message(2, b"1", b"{}"))
    assert clock[0] - started == pytest.approx(0.1, abs=0.011)  # the pace again, no burst of catching up
