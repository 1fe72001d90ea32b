"""The columnar path (`parse_chunks` with pyarrow) gives byte for byte the messages and rejects of
the row path (`parse_lines`: fast and careful), on good data and on every kind of bad row, whatever
the blocks a file is read in."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from app.event_time import EventTimeRules
from app.producer.parsing import Message, MessageBatch, Reject, parse_chunks, parse_lines, read_chunks
from app.schemas import ARTICLES, CLICKS, RecordSchema
from app.settings import REPO_ROOT

SAMPLE = REPO_ROOT / "app" / "data"
RULES = EventTimeRules(earliest_ms=946_684_800_000, max_future_ms=86_400_000, session_start_tolerance_ms=300_000)
HEADER = ",".join(CLICKS.columns).encode()
GOOD = b"0,1506825423271737,1506825423000,2,157541,1506826828020,4,3,20,1,20,2"


def good(user: int) -> bytes:
    return GOOD.replace(b"0,", str(user).encode() + b",", 1)


BAD_ROWS = [
    b"1,2,3",  # too few columns
    GOOD + b",99",  # too many
    GOOD.replace(b"157541", b"abc"),
    GOOD.replace(b"157541", b"1.5"),
    GOOD.replace(b",157541,", b",,"),  # missing value
    GOOD.replace(b"157541", b"NA"),  # pyarrow would read a null
    b"",  # empty line
    b"   ",
    GOOD.replace(b"157541", b"15\xff541"),  # not UTF-8
    GOOD.replace(b"157541", b"-0"),  # not canonical: the fast path keeps its text
    GOOD.replace(b"157541", b"007"),
    GOOD.replace(b"157541", b"+7"),
    GOOD.replace(b"157541", b" 157541"),  # padded: the careful path strips it
    GOOD.replace(b"157541", b'"157541"'),  # quoted
    GOOD.replace(b"157541", b"1234567890123456789"),  # 19 digits: a 64-bit integer off the fast path
    GOOD.replace(b"157541", b"12345678901234567890123"),  # outside 64 bits
    GOOD.replace(b"1506826828020", b"-5").replace(b"1506825423000", b"-10"),  # implausible times
    GOOD.replace(b"1506826828020", b"0").replace(b"1506825423000", b"0"),
    GOOD.replace(b"1506826828020", b"4102444800000"),  # the year 2100
    GOOD.replace(b"1506825423000", b"1506827128021"),  # 300.001 s before its session starts
    GOOD.replace(b"1506825423000", b"-9223372036854775808"),  # session start at the 64-bit minimum
    GOOD.replace(b",4,3,", b",4\r3,"),  # a lone carriage return inside a line
    b"9" * 5000,
]


def flat(items: list[Message | Reject | MessageBatch]) -> list[tuple[object, ...]]:
    """Every item as (line, key, value, click hour) or (line, reason, raw, click hour), batches spread
    out: the per-hour counts of the ledger come out the same on both paths too."""
    rows: list[tuple[object, ...]] = []
    for item in items:
        if isinstance(item, MessageBatch):
            hours = [None] * len(item.keys) if item.click_hours is None else item.click_hours.tolist()
            rows += [
                ("message", item.first_line + offset, key, value, hour)
                for offset, (key, value, hour) in enumerate(zip(item.keys, item.values, hours, strict=True))
            ]
        elif isinstance(item, Message):
            rows.append(("message", item.line, item.key, item.value, item.click_hour))
        else:
            rows.append(("reject", item.line, item.reason, item.raw, item.click_hour))
    return rows


def row_path(data: bytes, schema: RecordSchema = CLICKS) -> list[tuple[object, ...]]:
    return flat(list(parse_lines(data, schema, "clicks_hour_000.csv", None, RULES)))


def columnar(blocks: list[bytes], schema: RecordSchema = CLICKS) -> list[Message | Reject | MessageBatch]:
    return list(parse_chunks(blocks, schema, "clicks_hour_000.csv", None, RULES, columnar=True))


@pytest.mark.parametrize("bad", BAD_ROWS, ids=range(len(BAD_ROWS)))
@pytest.mark.parametrize("ending", [b"\n", b"\r\n"], ids=["lf", "crlf"])
def test_each_bad_row_among_good_ones_gives_the_row_paths_bytes(bad: bytes, ending: bytes) -> None:
    lines = [HEADER, good(1), good(2), bad, good(3), good(4)]
    data = ending.join(lines) + ending
    items = columnar([data])
    assert flat(items) == row_path(data)
    assert len(flat(items)) == 5


def test_a_mixed_file_read_in_small_blocks_gives_the_row_paths_bytes(tmp_path: Path) -> None:
    lines = [HEADER]
    for number, bad in enumerate(BAD_ROWS):
        lines += [good(10 * number + n) for n in range(7)] + [bad]
    data = b"\xef\xbb\xbf" + b"\n".join(lines)  # a BOM, and no final newline
    path = tmp_path / "clicks_hour_000.csv.gz"
    path.write_bytes(gzip.compress(data))
    expected = row_path(data)
    for block_bytes in (64, 1000, 2**20):
        assert flat(columnar(list(read_chunks(path, block_bytes)))) == expected, block_bytes


@pytest.mark.parametrize("name", ["clicks_hour_000.csv", "clicks_hour_001.csv", "articles_metadata.csv"])
def test_the_example_data_goes_through_in_batches_with_the_row_paths_bytes(name: str) -> None:
    schema = ARTICLES if name.startswith("articles") else CLICKS
    data = (SAMPLE / name).read_bytes()
    items = columnar(list(read_chunks(SAMPLE / name, 4096)), schema)
    assert all(isinstance(item, MessageBatch) for item in items)  # every real row vouched for in bulk
    assert flat(items) == row_path(data, schema)


def test_a_header_in_another_order_takes_the_row_path() -> None:
    header = b"session_id," + b",".join(c.encode() for c in CLICKS.columns if c != "session_id")
    row = b"55," + b",".join(b"1" for _ in range(len(CLICKS.columns) - 1))
    data = header + b"\n" + row + b"\n"
    items = columnar([data])
    assert not any(isinstance(item, MessageBatch) for item in items)
    assert flat(items) == row_path(data)


def test_the_columnar_path_does_not_import_pandas() -> None:
    """pyarrow imports pandas (0.7 s) when handed Python values; the producer's start-up stays short."""
    import subprocess
    import sys

    code = (
        "import sys; from pathlib import Path; from app.producer.parsing import parse_chunks, read_chunks; "
        "from app.producer import publisher; from app.schemas import CLICKS; "
        "from tests.unit.app.producer.test_parsing_columnar import RULES; "
        f"path = Path({str(SAMPLE / 'clicks_hour_000.csv')!r}); "
        "items = list(parse_chunks(read_chunks(path), CLICKS, path.name, None, RULES)); "
        "assert items and 'pandas' not in sys.modules, sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, check=True)


def test_each_click_carries_its_utc_hour_for_the_ledgers_per_hour_counts() -> None:
    data = HEADER + b"\n" + GOOD + b"\n" + GOOD.replace(b"1506826828020", b"1506830400000") + b"\n"
    hours = [row[-1] for row in flat(columnar([data]))]
    assert hours == [1506826828020 // 3_600_000, 1506830400000 // 3_600_000]  # 2017-10-01T03 and T04
    assert [row[-1] for row in row_path(data)] == hours
