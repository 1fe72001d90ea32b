"""Ledger decisions: publish, skip, resume, refuse a changed file or publish it as a new version."""

from __future__ import annotations

from dataclasses import replace

from app.producer.ledger import IN_PROGRESS, PUBLISHED, Action, LedgerEntry, decide


def entry(status: str = PUBLISHED, sha: str = "a" * 64, size: int = 100, lines_done: int = 10) -> LedgerEntry:
    return LedgerEntry(
        file="clicks_hour_1.csv",
        kind="clicks",
        topic="t",
        version=2,
        size=size,
        sha256=sha,
        status=status,
        lines_done=lines_done,
        rows=9,
        rejected=0,
    )


def test_new_file_is_published_as_version_1() -> None:
    decision = decide(None, 100, "a" * 64, "clicks_hour_1.csv", allow_new_version=False)
    assert (decision.action, decision.version, decision.lines_done) == (Action.PUBLISH, 1, 1)


def test_unchanged_published_file_is_skipped() -> None:
    assert decide(entry(), 100, "a" * 64, "f", allow_new_version=False).action is Action.SKIP_PUBLISHED
    assert decide(entry(), 100, "a" * 64, "f", allow_new_version=True).action is Action.SKIP_PUBLISHED


def test_changed_file_is_refused_with_a_clear_message() -> None:
    decision = decide(entry(), 120, "b" * 64, "clicks_hour_1.csv", allow_new_version=False)
    assert decision.action is Action.REFUSE_CHANGED
    assert "clicks_hour_1.csv changed after it was published (version 2: 100 bytes" in decision.reason
    assert "--new-version" in decision.reason


def test_changed_file_can_be_published_as_a_new_version() -> None:
    decision = decide(entry(), 120, "b" * 64, "f", allow_new_version=True)
    assert (decision.action, decision.version) == (Action.PUBLISH, 3)


def test_part_published_paced_file_resumes_after_its_last_line() -> None:
    decision = decide(entry(status=IN_PROGRESS, lines_done=42), 100, "a" * 64, "f", allow_new_version=False)
    assert (decision.action, decision.version, decision.lines_done) == (Action.RESUME, 2, 42)


def test_entry_round_trips_through_json() -> None:
    original = entry()
    assert LedgerEntry.from_json(original.to_json()) == original


def test_a_copy_of_a_published_file_under_another_name_is_refused() -> None:
    original = LedgerEntry(
        file="clicks_hour_001.csv", kind="clicks", topic="t", version=1, size=100, sha256="a" * 64,
        status=PUBLISHED, lines_done=10, rows=9, rejected=0,
    )  # fmt: skip
    refused = decide(None, 100, "a" * 64, "clicks_hour_051.csv", False, original)
    assert refused.action is Action.REFUSE_DUPLICATE
    assert (
        "same content as clicks_hour_001.csv" in refused.reason
        and "--new-version clicks_hour_051.csv" in refused.reason
    )
    assert decide(None, 100, "a" * 64, "clicks_hour_051.csv", True, original).action is Action.PUBLISH
    header_only = LedgerEntry(**{**original.__dict__, "rows": 0})
    assert decide(None, 100, "a" * 64, "clicks_hour_051.csv", False, header_only).action is Action.PUBLISH


def test_a_published_file_with_its_size_and_time_is_taken_as_unchanged_without_reading_it() -> None:
    published = replace(entry(), mtime_ns=1_700_000_000_000_000_000)
    assert published.unchanged_on_disk(100, 1_700_000_000_000_000_000)
    assert not published.unchanged_on_disk(101, 1_700_000_000_000_000_000)  # grew
    assert not published.unchanged_on_disk(100, 1_700_000_000_000_000_001)  # touched: read and hashed
    assert not entry().unchanged_on_disk(100, 0)  # an entry of an older producer has no time: always read
    in_progress = replace(entry(status=IN_PROGRESS), mtime_ns=5)
    assert not in_progress.unchanged_on_disk(100, 5)  # a paced file part-way: read to resume it
