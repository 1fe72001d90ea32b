"""CSV rows to Kafka messages: validate each row against its schema, or set it aside with a reason.

`parse_file()` reads a whole file (plain or gzip), checks its header, and yields for every line
after the header either a `Message` (key, JSON value, line number) or a `Reject` (line number,
reason, raw text). A header that lacks required columns refuses the whole file with a
`HeaderError` naming them. Nothing here talks to Kafka.

A file is read in blocks of whole lines (`read_chunks`, about 8 MiB each), so its size does not
bound memory. A block of a file whose header is in schema order takes the columnar path: pyarrow's
CSV reader types every column at once, the values are checked as vectors (canonical decimal text,
plausible click times) and the JSON values and keys are built in bulk (`MessageBatch`). A row the
vectors cannot vouch for takes the row path: a fast path (one compiled regular expression and one
string template per row), and for anything odd the careful path through the `csv` module, which
finds the precise reason. Every path gives the same bytes for the same row (unit tests pin it).
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import itertools
import json
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.event_time import EVENT_TIME, LONG_MAX, LONG_MIN, SESSION_START, EventTimeRules
from app.hours import MS_PER_HOUR
from app.schemas import RecordSchema

if TYPE_CHECKING:
    import numpy as np

BOM = b"\xef\xbb\xbf"
MAX_REJECT_TEXT = 10_000  # characters of a bad line kept in its reject record
# at most 18 digits on the fast path: always a 64-bit integer; longer ones take the careful path,
# which refuses those outside (a 23-digit article id)
_INTEGER = r"-?(?:0|[1-9][0-9]{0,17})"


MAX_HEADER_TEXT = 300  # characters of a bad header quoted in a refusal


def printable(text: str, limit: int = MAX_HEADER_TEXT) -> str:
    """`text` for a message about it: control characters escaped (a binary file's "header" holds
    NULs, which PostgreSQL refuses in Airflow's XComs and JSON shows badly) and cut to `limit`."""
    shown = "".join(char if char.isprintable() else repr(char)[1:-1] for char in text[:limit])
    return shown[:limit] + ("..." if len(shown) > limit or len(text) > limit else "")


class HeaderError(ValueError):
    """The file's header does not carry the schema's columns; the file is refused whole."""


@dataclass(frozen=True, slots=True)
class Message:
    line: int
    key: bytes
    value: bytes
    event_time_ms: int | None = None
    click_hour: int | None = None  # clicks: the click's UTC hour, in hours since 1970 (the ledger counts them)


@dataclass(frozen=True, slots=True)
class Reject:
    line: int
    reason: str
    raw: str
    click_hour: int | None = None  # a click set aside for its event time: its hour, as in `Message`


@dataclass(frozen=True, slots=True)
class MessageBatch:
    """Messages of consecutive lines, from `first_line` on, built in bulk."""

    first_line: int
    keys: list[bytes]
    values: list[bytes]
    click_hours: Any = None  # clicks: a numpy array of each message's `Message.click_hour`

    @property
    def line(self) -> int:
        """The last line in the batch."""
        return self.first_line + len(self.keys) - 1


Item = Message | Reject | MessageBatch

CHUNK_BYTES = 2 * 2**20  # a block's arrays and messages stay a few tens of MiB


@dataclass(frozen=True)
class FileContent:
    """A file as hashed in one streaming pass (its content, decompressed). Publishing reads it again
    in blocks and hashes what it parsed, so a file changed in between is caught (`sha256` differs)."""

    size: int  # on disk
    sha256: str
    mtime_ns: int
    lines: int  # newlines in the content


def read_chunks(path: Path, chunk_bytes: int = CHUNK_BYTES) -> Iterator[bytes]:
    """The file's content (gzip decompressed) in blocks that each end with a newline, but the last."""
    packed = path.name.endswith(".gz")
    try:
        with gzip.open(path, "rb") if packed else path.open("rb") as stream:
            rest = b""
            while block := stream.read(chunk_bytes):
                cut = block.rfind(b"\n") + 1
                if cut == 0:
                    rest += block  # a line longer than a block
                    continue
                yield rest + block[:cut]
                rest = block[cut:]
            if rest:
                yield rest
    except (OSError, EOFError) as error:
        if not packed:
            raise
        raise HeaderError(f"{path}: not a readable gzip file ({error})") from None


def read_file(path: Path) -> FileContent:
    """Size, time, hash and line count of a file, in constant memory."""
    stat = path.stat()
    digest, lines = hashlib.sha256(), 0
    for block in read_chunks(path):
        digest.update(block)
        lines += block.count(b"\n")
    return FileContent(stat.st_size, digest.hexdigest(), stat.st_mtime_ns, lines)


class RowParser:
    """Turns the lines of one file into messages for one schema, given the file's header."""

    def __init__(
        self,
        schema: RecordSchema,
        header: list[str],
        source: str,
        event_time: str | None = None,
        rules: EventTimeRules | None = None,
        published_ms: int = 0,
    ) -> None:
        self.schema = schema
        self.source = source
        checked = rules is not None and EVENT_TIME in schema.columns and SESSION_START in schema.columns
        self.rules = rules if checked else None
        self.published_ms = published_ms
        missing = [column for column in schema.columns if column not in header]
        if missing:
            raise HeaderError(
                f"{source}: header lacks required column(s) {', '.join(missing)} "
                f"(found: {printable(', '.join(header)) or 'nothing'})"
            )
        self.header = header
        self.positions = [header.index(column) for column in schema.columns]
        self.key_index = schema.columns.index(schema.key)
        self.event_index = schema.columns.index(event_time) if event_time else None
        self.click_index = schema.columns.index(EVENT_TIME) if self.rules else -1
        self.session_index = schema.columns.index(SESSION_START) if self.rules else -1
        self.template = "{" + ",".join(f'"{column}":%s' for column in schema.columns) + "}"
        self.in_order = header == list(schema.columns)
        self.fast = re.compile(",".join(f"({_INTEGER})" for _ in header)) if self.in_order else None

    def parse(self, number: int, raw: bytes) -> Message | Reject:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            return Reject(
                number,
                f"bytes that are not UTF-8 (0x{raw[error.start]:02x} at byte {error.start + 1})",
                raw.decode("utf-8", errors="backslashreplace")[:MAX_REJECT_TEXT],
            )
        if self.fast is not None:
            match = self.fast.fullmatch(text)
            if match is not None:
                values = match.groups()
                click_hour = None
                if self.rules is not None:
                    click_ms = int(values[self.click_index])
                    click_hour = click_ms // MS_PER_HOUR
                    problem = self.rules.problem(click_ms, int(values[self.session_index]), self.published_ms)
                    if problem is not None:
                        return Reject(number, problem, text[:MAX_REJECT_TEXT], click_hour)
                return Message(
                    number,
                    values[self.key_index].encode(),
                    (self.template % values).encode(),
                    int(values[self.event_index]) if self.event_index is not None else None,
                    click_hour,
                )
        return self._parse_carefully(number, text)

    def _parse_carefully(self, number: int, text: str) -> Message | Reject:
        if not text.strip():
            return Reject(number, "empty line", text)
        try:
            cells = next(csv.reader([text], strict=True))
        except csv.Error as error:
            return Reject(number, f"malformed CSV ({error})", text[:MAX_REJECT_TEXT])
        if len(cells) != len(self.header):
            return Reject(
                number,
                f"{len(cells)} columns where the header has {len(self.header)}",
                text[:MAX_REJECT_TEXT],
            )
        values: list[int] = []
        for column, position in zip(self.schema.columns, self.positions, strict=True):
            cell = cells[position].strip()
            if cell == "":
                return Reject(number, f"missing value for {column}", text[:MAX_REJECT_TEXT])
            shown = cell if len(cell) <= 40 else cell[:40] + "..."
            try:
                value = int(cell)
            except ValueError:
                return Reject(number, f"{column} is not an integer: {shown!r}", text[:MAX_REJECT_TEXT])
            if not LONG_MIN <= value <= LONG_MAX:
                return Reject(number, f"{column} is outside a 64-bit integer: {shown!r}", text[:MAX_REJECT_TEXT])
            values.append(value)
        click_hour = None
        if self.rules is not None:
            click_hour = values[self.click_index] // MS_PER_HOUR
            problem = self.rules.problem(values[self.click_index], values[self.session_index], self.published_ms)
            if problem is not None:
                return Reject(number, problem, text[:MAX_REJECT_TEXT], click_hour)
        record = dict(zip(self.schema.columns, values, strict=True))
        return Message(
            number,
            str(values[self.key_index]).encode(),
            json.dumps(record, separators=(",", ":")).encode(),
            values[self.event_index] if self.event_index is not None else None,
            click_hour,
        )


def parse_lines(
    data: bytes,
    schema: RecordSchema,
    source: str,
    event_time: str | None = None,
    rules: EventTimeRules | None = None,
) -> Iterator[Message | Reject]:
    """Messages and rejects for every line after the header, in file order; line 1 is the header.
    With `rules`, clicks whose time is implausible (measured against now, the publishing clock)
    are rejects too. The row path alone (`parse_chunks` is what the publisher uses)."""
    for item in parse_chunks([data], schema, source, event_time, rules, columnar=False):
        assert not isinstance(item, MessageBatch)
        yield item


def parse_chunks(
    chunks: Iterable[bytes],
    schema: RecordSchema,
    source: str,
    event_time: str | None = None,
    rules: EventTimeRules | None = None,
    columnar: bool = True,
) -> Iterator[Item]:
    """`parse_lines` over blocks of whole lines (`read_chunks`); with `columnar`, a block of a file
    whose header is in schema order comes as `MessageBatch`es, with the rows the vectors cannot vouch
    for as single items between them, all in line order. The header is checked on the first next()."""
    blocks = iter(chunks)
    first = next(blocks, b"")
    if first.startswith(BOM):
        first = first[len(BOM) :]
    if not first:
        raise HeaderError(f"{source}: empty file, no header")
    header_line, _, body = first.partition(b"\n")
    header_text = header_line.rstrip(b"\r").decode("utf-8", errors="replace")
    try:
        header = [column.strip() for column in next(csv.reader([header_text]), [])]
    except csv.Error as error:  # a binary file's first "line" (a carriage return inside it)
        raise HeaderError(f"{source}: header is not a CSV line ({error}): {printable(header_text)}") from None
    parser = RowParser(schema, header, source, event_time, rules, int(time.time() * 1000))
    bulk = columnar and parser.in_order and event_time is None
    number = 2
    for block in itertools.chain([body], blocks):
        if not block:
            continue
        batches = encode_block(parser, block, number) if bulk else None
        yield from batches if batches is not None else _parse_block(parser, block, number)
        number += block.count(b"\n") + (not block.endswith(b"\n"))


def _parse_block(parser: RowParser, block: bytes, number: int) -> Iterator[Message | Reject]:
    """The row path over a block of lines whose first is line `number`."""
    lines = block.split(b"\n")
    if lines[-1] == b"":
        lines.pop()  # the block's final newline ends its last line; it does not start an empty one
    for offset, raw in enumerate(lines):
        yield parser.parse(number + offset, raw[:-1] if raw.endswith(b"\r") else raw)


# Python values handed to pyarrow (a scalar, `to_numpy()`) make it import pandas, 0.7 s per process:
# literals and numbers cross over through buffers instead


def _pool() -> object:
    """The C library's allocator: it gives freed block memory back, where pyarrow's default
    (mimalloc) kept the resident size growing with the blocks (145 MiB against 110 over the Globo set)."""
    import pyarrow as pa

    return pa.system_memory_pool()


def _literal(text: str) -> object:
    """A pyarrow string scalar."""
    import numpy as np
    import pyarrow as pa

    data = text.encode()
    offsets = pa.py_buffer(np.array([0, len(data)], dtype=np.int32).tobytes())
    return pa.Array.from_buffers(pa.string(), 1, [None, offsets, pa.py_buffer(data)])[0]


def _numbers(column: object, dtype: type) -> np.ndarray:
    """A pyarrow column of fixed-width numbers without nulls, as a NumPy array."""
    import numpy as np

    array = column.combine_chunks(memory_pool=_pool())  # type: ignore[attr-defined]
    return np.frombuffer(array.buffers()[1], dtype=dtype)[array.offset : array.offset + len(array)]


def encode_block(parser: RowParser, block: bytes, number: int) -> list[Item] | None:
    """The columnar path over a block of lines whose first is line `number` (header in schema
    order): None when pyarrow cannot type the block as the schema's integers (the row path then
    finds each reason); else batches of the rows whose text is canonical and whose click time is
    plausible, and the row path's item for each other row, in line order."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv

    schema = parser.schema
    raw = np.frombuffer(block, dtype=np.uint8)
    ends = np.flatnonzero(raw == 10)
    if not block.endswith(b"\n"):
        ends = np.append(ends, len(block))
    starts = np.concatenate(([0], ends[:-1] + 1))
    lengths = ends - starts
    carriage = np.zeros(len(ends), dtype=bool)
    nonempty = lengths > 0
    carriage[nonempty] = raw[ends[nonempty] - 1] == 13
    lengths = lengths - carriage
    pool = _pool()
    # serial: the threaded reader left parse tasks on pyarrow's thread pool that aborted one process
    # in a hundred at exit ("terminate called without an active exception", exit -6: 6 of 600 runs
    # under load, none of 1,200 serial), at no measurable cost (the shards are the parallelism)
    try:
        table = pacsv.read_csv(
            pa.py_buffer(block),
            read_options=pacsv.ReadOptions(column_names=list(schema.columns), use_threads=False),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(schema.columns, pa.int64()),
                null_values=[],
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
            memory_pool=pool,
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None
    if table.num_rows != len(ends) or any(column.null_count for column in table.columns):
        return None  # an empty line skipped, a lone carriage return read as a line end
    texts = [pc.cast(table.column(column), pa.string(), memory_pool=pool) for column in schema.columns]
    # the decimal text of each value is the row's own text exactly when the lengths agree (any other
    # spelling of a number, a space, a quote or a plus sign is longer)
    text_lengths = np.full(len(ends), len(texts) - 1, dtype=np.int64)  # the commas
    for text in texts:
        text_lengths += _numbers(pc.utf8_length(text, memory_pool=pool), np.int32)
    good: np.ndarray = text_lengths == lengths
    hours = None
    if parser.rules is not None:
        clicks = _numbers(table.column(EVENT_TIME), np.int64)
        sessions = _numbers(table.column(SESSION_START), np.int64)
        good = good & ~parser.rules.maybe_implausible(clicks, sessions, parser.published_ms)
        hours = clicks // MS_PER_HOUR
    pieces: list[object] = []
    for position, (column, text) in enumerate(zip(schema.columns, texts, strict=True)):
        pieces += [_literal(("{" if position == 0 else ",") + f'"{column}":'), text]
    joined = pc.binary_join_element_wise(*pieces, _literal("}"), _literal(""), memory_pool=pool)
    values = pc.cast(joined, pa.binary(), memory_pool=pool).to_pylist()
    keys = pc.cast(texts[parser.key_index], pa.binary(), memory_pool=pool).to_pylist()
    if good.all():
        return [MessageBatch(number, keys, values, hours)]
    items: list[Item] = []
    run_start = 0
    for index in np.flatnonzero(~good).tolist():
        if index > run_start:
            items.append(
                MessageBatch(
                    number + run_start,
                    keys[run_start:index],
                    values[run_start:index],
                    None if hours is None else hours[run_start:index],
                )
            )
        items.append(parser.parse(number + index, block[starts[index] : starts[index] + lengths[index]]))
        run_start = index + 1
    if run_start < len(keys):
        items.append(
            MessageBatch(
                number + run_start, keys[run_start:], values[run_start:], None if hours is None else hours[run_start:]
            )
        )
    return items
