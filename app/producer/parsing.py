"""CSV rows to Kafka messages: validate each row against its schema, or set it aside with a reason.

`parse_file()` reads a whole file (plain or gzip), checks its header, and yields for every line
after the header either a `Message` (key, JSON value, line number) or a `Reject` (line number,
reason, raw text). A header that lacks required columns refuses the whole file with a
`HeaderError` naming them. Nothing here talks to Kafka.

Rows whose columns are in schema order and are plain decimal integers (every row of the real
data) take a fast path: one compiled regular expression and one string template per row. Any
other row takes the careful path through the `csv` module, which finds the precise reason.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from app.event_time import EVENT_TIME, LONG_MAX, LONG_MIN, SESSION_START, EventTimeRules
from app.schemas import RecordSchema

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


@dataclass(frozen=True, slots=True)
class Reject:
    line: int
    reason: str
    raw: str


@dataclass(frozen=True)
class FileContent:
    """A file's bytes as read once: what is hashed is exactly what is parsed and published."""

    data: bytes
    size: int
    sha256: str
    mtime_ns: int


def read_file(path: Path) -> FileContent:
    stat = path.stat()
    raw = path.read_bytes()
    try:
        data = gzip.decompress(raw) if path.name.endswith(".gz") else raw
    except (OSError, EOFError) as error:
        raise HeaderError(f"{path}: not a readable gzip file ({error})") from None
    return FileContent(data=data, size=stat.st_size, sha256=hashlib.sha256(data).hexdigest(), mtime_ns=stat.st_mtime_ns)


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
        in_order = header == list(schema.columns)
        self.fast = re.compile(",".join(f"({_INTEGER})" for _ in header)) if in_order else None

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
                if self.rules is not None:
                    problem = self.rules.problem(
                        int(values[self.click_index]), int(values[self.session_index]), self.published_ms
                    )
                    if problem is not None:
                        return Reject(number, problem, text[:MAX_REJECT_TEXT])
                return Message(
                    number,
                    values[self.key_index].encode(),
                    (self.template % values).encode(),
                    int(values[self.event_index]) if self.event_index is not None else None,
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
        if self.rules is not None:
            problem = self.rules.problem(values[self.click_index], values[self.session_index], self.published_ms)
            if problem is not None:
                return Reject(number, problem, text[:MAX_REJECT_TEXT])
        record = dict(zip(self.schema.columns, values, strict=True))
        return Message(
            number,
            str(values[self.key_index]).encode(),
            json.dumps(record, separators=(",", ":")).encode(),
            values[self.event_index] if self.event_index is not None else None,
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
    are rejects too."""
    if data.startswith(BOM):
        data = data[len(BOM) :]
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()  # the file's final newline ends the last line; it does not start an empty one
    if not lines:
        raise HeaderError(f"{source}: empty file, no header")
    header_text = lines[0].rstrip(b"\r").decode("utf-8", errors="replace")
    try:
        header = [column.strip() for column in next(csv.reader([header_text]), [])]
    except csv.Error as error:  # a binary file's first "line" (a carriage return inside it)
        raise HeaderError(f"{source}: header is not a CSV line ({error}): {printable(header_text)}") from None
    parser = RowParser(schema, header, source, event_time, rules, int(time.time() * 1000))
    for number, raw in enumerate(lines[1:], start=2):
        yield parser.parse(number, raw[:-1] if raw.endswith(b"\r") else raw)
