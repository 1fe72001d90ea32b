"""Parsing CSV rows into messages, and setting bad rows aside with their line and reason."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from app.producer.parsing import HeaderError, Message, Reject, parse_lines, read_chunks, read_file
from app.schemas import ARTICLES, CLICKS

CLICK_HEADER = ",".join(CLICKS.columns)
GOOD_CLICK = "0,1506825423271737,1506825423000,2,157541,1506826828020,4,3,20,1,20,2"


def parse(text: str | bytes, schema=CLICKS, event_time: str | None = None) -> list[Message | Reject]:  # type: ignore[no-untyped-def]
    data = text.encode() if isinstance(text, str) else text
    return list(parse_lines(data, schema, "clicks_hour_000.csv", event_time))


def test_good_row_becomes_typed_json_keyed_by_session() -> None:
    [message] = parse(f"{CLICK_HEADER}\n{GOOD_CLICK}\n")
    assert isinstance(message, Message)
    assert message.line == 2
    assert message.key == b"1506825423271737"
    value = json.loads(message.value)
    assert list(value) == list(CLICKS.columns)
    assert value["session_id"] == 1506825423271737 and value["click_article_id"] == 157541
    assert all(isinstance(v, int) for v in value.values())


def test_articles_are_keyed_by_article_id() -> None:
    [message] = parse(
        "article_id,category_id,created_at_ts,publisher_id,words_count\n7,1,1405341936000,0,189\n", ARTICLES
    )
    assert isinstance(message, Message)
    assert message.key == b"7"
    assert json.loads(message.value) == {
        "article_id": 7,
        "category_id": 1,
        "created_at_ts": 1405341936000,
        "publisher_id": 0,
        "words_count": 189,
    }


def test_columns_in_another_order_are_mapped_by_name() -> None:
    header = "session_id," + ",".join(c for c in CLICKS.columns if c != "session_id")
    row = "55," + ",".join("1" for _ in range(len(CLICKS.columns) - 1))
    [message] = parse(f"{header}\n{row}\n")
    assert isinstance(message, Message)
    assert message.key == b"55" and json.loads(message.value)["session_id"] == 55


def test_slow_path_gives_the_same_json_as_the_fast_path() -> None:
    quoted = ",".join(f'"{cell}"' for cell in GOOD_CLICK.split(","))
    fast, careful = parse(f"{CLICK_HEADER}\n{GOOD_CLICK}\n{quoted}\n")
    assert isinstance(fast, Message) and isinstance(careful, Message)
    assert fast.value == careful.value and fast.key == careful.key


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ("1,2,3", "3 columns where the header has 12"),
        (GOOD_CLICK + ",99", "13 columns where the header has 12"),
        (GOOD_CLICK.replace("157541", "abc"), "click_article_id is not an integer: 'abc'"),
        (GOOD_CLICK.replace("157541", "1.5"), "click_article_id is not an integer: '1.5'"),
        (GOOD_CLICK.replace(",157541,", ",,"), "missing value for click_article_id"),
        ("", "empty line"),
        ("   ", "empty line"),
    ],
)
def test_bad_rows_are_rejected_with_line_and_reason(row: str, reason: str) -> None:
    items = parse(f"{CLICK_HEADER}\n{GOOD_CLICK}\n{row}\n{GOOD_CLICK}\n")
    assert [type(item) for item in items] == [Message, Reject, Message]
    reject = items[1]
    assert isinstance(reject, Reject)
    assert (reject.line, reject.reason, reject.raw) == (3, reason, row)


def test_bytes_that_are_not_utf8_are_rejected_and_kept_escaped() -> None:
    bad = GOOD_CLICK.encode().replace(b"157541", b"15\xff541")
    items = parse(CLICK_HEADER.encode() + b"\n" + bad + b"\n" + GOOD_CLICK.encode() + b"\n")
    reject = items[0]
    assert isinstance(reject, Reject)
    assert reject.line == 2 and "not UTF-8 (0xff at byte" in reject.reason
    assert "\\xff" in reject.raw
    assert isinstance(items[1], Message)


def test_crlf_bom_and_missing_final_newline_are_accepted() -> None:
    data = b"\xef\xbb\xbf" + f"{CLICK_HEADER}\r\n{GOOD_CLICK}\r\n{GOOD_CLICK}".encode()
    items = parse(data)
    assert [type(item) for item in items] == [Message, Message]
    assert [item.line for item in items] == [2, 3]


def test_a_10_mb_line_is_rejected_with_its_line_and_a_bounded_copy() -> None:
    huge = "9" * (10 * 1024 * 1024)
    items = parse(f"{CLICK_HEADER}\n{GOOD_CLICK}\n{huge}\n{GOOD_CLICK}\n")
    assert [type(item) for item in items] == [Message, Reject, Message]
    reject = items[1]
    assert isinstance(reject, Reject) and reject.line == 3 and "field larger than field limit" in reject.reason
    assert len(reject.raw) <= 10_000  # the rejects topic keeps the start of the line, not 10 MB


def test_truncated_last_line_is_rejected() -> None:
    items = parse(f"{CLICK_HEADER}\n{GOOD_CLICK}\n{GOOD_CLICK[:20]}")
    assert isinstance(items[-1], Reject) and items[-1].line == 3 and "columns" in items[-1].reason


def test_header_only_file_gives_no_rows() -> None:
    assert parse(f"{CLICK_HEADER}\n") == []


def test_missing_columns_refuse_the_file_and_are_named() -> None:
    header = CLICK_HEADER.replace("click_os,", "").replace("user_id,", "")
    with pytest.raises(HeaderError, match=r"clicks_hour_000.csv: header lacks required column\(s\) user_id, click_os"):
        parse(f"{header}\n1,2\n")


def test_empty_file_is_refused() -> None:
    with pytest.raises(HeaderError, match="empty file"):
        parse(b"")


def test_event_time_is_carried_for_replay() -> None:
    [message] = parse(f"{CLICK_HEADER}\n{GOOD_CLICK}\n", event_time="click_timestamp")
    assert isinstance(message, Message) and message.event_time_ms == 1506826828020


def test_gzip_files_are_read_and_hashed_by_content(tmp_path: Path) -> None:
    plain, packed = tmp_path / "clicks_hour_000.csv", tmp_path / "clicks_hour_001.csv.gz"
    text = f"{CLICK_HEADER}\n{GOOD_CLICK}\n".encode()
    plain.write_bytes(text)
    packed.write_bytes(gzip.compress(text))
    assert b"".join(read_chunks(plain)) == b"".join(read_chunks(packed)) == text
    assert read_file(plain).sha256 == read_file(packed).sha256
    assert read_file(packed).size == packed.stat().st_size


def test_a_binary_header_is_quoted_printable_and_short_in_its_refusal() -> None:
    """A binary file's first line holds NULs (PostgreSQL refuses them in Airflow's XComs): the
    refusal escapes them and quotes at most a few hundred characters."""
    from app.producer.parsing import HeaderError, parse_lines
    from app.schemas import CLICKS

    with pytest.raises(HeaderError) as refused:
        next(parse_lines(bytes(range(1, 9)) * 2 + b"\x00" * 5000 + b"\n1\n", CLICKS, "binary.csv"))
    message = str(refused.value)
    assert "\x00" not in message and "\\x00" in message and len(message) < 1000
    assert message.startswith("binary.csv: header lacks required column(s) user_id")


def test_a_header_the_csv_module_cannot_read_refuses_the_file_instead_of_raising_its_error() -> None:
    """A carriage return inside the first line (any binary file may hold one) made `csv` raise its own
    error, which stopped a whole publishing task instead of refusing the one file."""
    from app.producer.parsing import HeaderError, parse_lines
    from app.schemas import CLICKS

    with pytest.raises(HeaderError) as refused:
        next(parse_lines(bytes(range(255, 10, -1)) + b"\n1\n", CLICKS, "binary.csv"))
    assert str(refused.value).startswith("binary.csv: header is not a CSV line (")


def click(**changes: int | str) -> str:
    values = dict(zip(CLICKS.columns, GOOD_CLICK.split(","), strict=True))
    values.update({name: str(value) for name, value in changes.items()})
    return ",".join(values.values())


@pytest.mark.parametrize("fast_path", [True, False])
def test_implausible_click_times_and_numbers_outside_64_bits_are_rejects_with_their_reason(fast_path: bool) -> None:
    """The cases of issue 16, on both paths (a row with padded cells takes the careful one)."""
    from app.event_time import EventTimeRules

    rules = EventTimeRules(
        earliest_ms=946_684_800_000,
        max_future_ms=86_400_000,
        session_start_tolerance_ms=300_000,
        max_session_ms=3_600_000,
    )
    rows = [
        click(),
        click(click_timestamp=-5, session_start=-10),
        click(click_timestamp=0, session_start=0),
        click(click_timestamp=4102444800000),  # the year 2100
        click(session_start=1506826828020 + 300_001),  # the click comes 300.001 s before its session starts
        click(session_start=1506826828020 + 300_000),  # within the tolerance
        click(click_article_id="12345678901234567890123"),
        click(session_start=1506826828020 - 3_600_001),  # the click comes an hour and 1 ms after its session started
        click(session_start=1506826828020 - 3_600_000),  # the longest session allowed
    ]
    if not fast_path:
        rows = [row.replace(",", ", ") for row in rows]
    text = "\n".join([CLICK_HEADER, *rows]) + "\n"
    items = list(parse_lines(text.encode(), CLICKS, "clicks_hour_000.csv", None, rules))
    reasons = {item.line: item.reason for item in items if isinstance(item, Reject)}
    assert [item.line for item in items if isinstance(item, Message)] == [2, 7, 10]
    assert reasons[3] == "click_timestamp before CLICKSTREAM_EARLIEST_EVENT_TIME (2000-01-01T00:00:00+00:00): -5"
    assert reasons[4] == "click_timestamp before CLICKSTREAM_EARLIEST_EVENT_TIME (2000-01-01T00:00:00+00:00): 0"
    assert reasons[5] == (
        "click_timestamp more than CLICKSTREAM_MAX_FUTURE_SECONDS (86400) after it was published: 4102444800000"
    )
    assert reasons[6].startswith("click_timestamp earlier than its session_start by more than")
    assert reasons[8] == "click_article_id is outside a 64-bit integer: '12345678901234567890123'"
    assert reasons[9] == (
        "click_timestamp later than its session_start by more than CLICKSTREAM_MAX_SESSION_SECONDS (3600): "
        "1506826828020 > 1506823228019"
    )
