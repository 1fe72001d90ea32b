"""The ledger: what was published, kept on a compacted Kafka topic inside the same transactions.

Each published file (or, in paced modes, each committed part of a file) writes a `LedgerEntry`
keyed by the file's name in the transaction that carries its rows, so the ledger and the data
topics can never disagree for a `read_committed` reader. A refused file gets a `Refusal` (under
`refused<NUL><name>`), removed when the file is published. `decide()` turns the ledger's last
word on a file and the file as it is now into what to do.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from app.hours import epoch_hour, epoch_hour_key
from app.kafka_io import committed_reader_config
from app.settings import Settings

log = logging.getLogger(__name__)

PUBLISHED = "published"
IN_PROGRESS = "in_progress"


def hour_counts(per_epoch_hour: dict[int, int]) -> dict[str, int]:
    """Per-hour counts as the ledger keeps them: `2017-10-01T03` -> rows, in hour order."""
    return {epoch_hour_key(hour): rows for hour, rows in sorted(per_epoch_hour.items())}


@dataclass(frozen=True)
class LedgerEntry:
    file: str
    kind: str
    topic: str
    version: int
    size: int
    sha256: str
    status: str  # PUBLISHED, or IN_PROGRESS while a paced file is committed part by part
    lines_done: int  # last line of the file whose row is committed (the header is line 1)
    rows: int
    rejected: int
    offsets: dict[str, list[int]] = field(default_factory=dict)  # partition -> [first, last]
    published_at: str = ""
    schema_version: int = 1
    mtime_ns: int = 0  # the file's modification time when it was read for publishing (0: not recorded)
    # clicks: rows published, and rows set aside for their click time, per UTC hour of the click
    # (`2017-10-01T03` -> rows); None in entries written before the ledger counted hours
    hours: dict[str, int] | None = None
    rejected_hours: dict[str, int] | None = None

    @staticmethod
    def epoch_hours(counts: dict[str, int] | None) -> dict[int, int]:
        """Per-hour counts keyed by hours since 1970, as the producer counts them."""
        return {epoch_hour(key): rows for key, rows in (counts or {}).items()}

    def unchanged_on_disk(self, size: int, mtime_ns: int) -> bool:
        """Whether a published file still has the size and modification time it was published with:
        then it is taken as unchanged without reading and hashing it again (as `make` and `rsync`
        do). A file rewritten in place with its old size and modification time put back is not
        noticed; publish it with `--new-version`, which always reads the file."""
        return self.status == PUBLISHED and self.mtime_ns != 0 and (self.size, self.mtime_ns) == (size, mtime_ns)

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":"), sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> LedgerEntry:
        values: dict[str, Any] = json.loads(raw)
        known = {name: values[name] for name in cls.__dataclass_fields__ if name in values}
        return cls(**known)


REFUSAL_KEY_PREFIX = "refused\x00"  # a file name never holds a NUL: no refusal key is a file's


@dataclass(frozen=True)
class Refusal:
    """A file the producer refused, as the ledger remembers it: why, what to do, and the file's size
    and modification time then. While both still match, the file is refused again without being
    read (the sensor's poll stays cheap); once it changes, it is looked at again."""

    file: str
    reason: str
    fix: str
    size: int
    mtime_ns: int
    refused_at: str = ""

    @property
    def key(self) -> bytes:
        return refusal_key(self.file)

    def unchanged_on_disk(self, size: int, mtime_ns: int) -> bool:
        return (self.size, self.mtime_ns) == (size, mtime_ns)

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":"), sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Refusal:
        values: dict[str, Any] = json.loads(raw)
        return cls(**{name: values[name] for name in cls.__dataclass_fields__ if name in values})


def refusal_key(file: str) -> bytes:
    return (REFUSAL_KEY_PREFIX + file).encode()


@dataclass(frozen=True)
class LedgerState:
    files: dict[str, LedgerEntry]  # file name -> its latest committed entry
    refusals: dict[str, Refusal]  # file name -> why it is refused (until it is published or changes)


class LedgerReadError(RuntimeError):
    """The ledger topic could not be read to its end."""


# messages per consume call (one call per message cost 0.8 s for 10,000 files); a call returns when
# it has them or after its timeout, so the last, partial batch costs one short timeout
LEDGER_BATCH = 1_000


def read_ledger(settings: Settings, timeout: float = 30.0) -> dict[str, LedgerEntry]:
    """The latest committed entry of every file, read from the start of the ledger topic."""
    return read_ledger_state(settings, timeout).files


def read_ledger_state(settings: Settings, timeout: float = 30.0) -> LedgerState:
    """The files' latest committed entries and the refusals in force, in one read of the topic."""
    consumer = Consumer(committed_reader_config(settings, "clickstream-ledger-reader"))
    entries: dict[str, LedgerEntry] = {}
    refusals: dict[str, Refusal] = {}
    state = LedgerState(entries, refusals)
    try:
        topics = consumer.list_topics(timeout=timeout).topics
        if settings.kafka_ledger_topic not in topics:
            return state  # nothing was ever published with these settings
        partition = TopicPartition(settings.kafka_ledger_topic, 0)
        low, high = _watermarks(consumer, partition, timeout)
        if high <= low:
            return state
        consumer.assign([TopicPartition(settings.kafka_ledger_topic, 0, low)])
        deadline = time.monotonic() + timeout
        while True:
            position = consumer.position([partition])[0].offset
            if position >= high:
                break
            if time.monotonic() > deadline:
                raise LedgerReadError(
                    f"ledger topic {settings.kafka_ledger_topic}: read to offset {position} of {high} "
                    f"within {timeout:.0f} s"
                )
            for message in consumer.consume(num_messages=LEDGER_BATCH, timeout=0.05):
                if message.error() is not None:
                    continue
                key = (message.key() or b"").decode()
                value = message.value()
                if key.startswith(REFUSAL_KEY_PREFIX):
                    name = key.removeprefix(REFUSAL_KEY_PREFIX)
                    if value is None:
                        refusals.pop(name, None)  # published since, or looked at again
                    else:
                        refusals[name] = Refusal.from_json(value)
                elif value is None:
                    entries.pop(key, None)  # a tombstone forgets the file
                else:
                    entries[key] = LedgerEntry.from_json(value)
    except KafkaException as error:
        raise LedgerReadError(
            f"cannot read the ledger topic {settings.kafka_ledger_topic} at KAFKA_SERVERS={settings.kafka_servers}: "
            f"{error}"
        ) from None
    finally:
        consumer.close()
    return state


_RETRIABLE = {KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE, KafkaError.UNKNOWN_TOPIC_OR_PART}


def _watermarks(consumer: Consumer, partition: TopicPartition, timeout: float) -> tuple[int, int]:
    """The partition's low and high offsets, waiting out a leader election (a topic just created)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            low, high = consumer.get_watermark_offsets(partition, timeout=timeout)
            return int(low), int(high)
        except KafkaException as error:
            if error.args[0].code() not in _RETRIABLE or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


class Action(Enum):
    PUBLISH = "publish"
    RESUME = "resume"  # a paced publication stopped part-way: go on after lines_done
    SKIP_PUBLISHED = "already_published"
    REFUSE_CHANGED = "refused_changed"
    REFUSE_DUPLICATE = "refused_duplicate"  # the same content was published under another name


@dataclass(frozen=True)
class Decision:
    action: Action
    version: int
    lines_done: int = 1
    reason: str = ""


def decide(
    entry: LedgerEntry | None,
    size: int,
    sha256: str,
    name: str,
    allow_new_version: bool,
    same_content: LedgerEntry | None = None,
) -> Decision:
    """What to do with a file, given the ledger's last entry for it, its content now, and a file of
    another name already published with the same content (if any)."""
    if entry is None:
        if same_content is not None and same_content.rows > 0 and not allow_new_version:
            return Decision(
                Action.REFUSE_DUPLICATE,
                1,
                reason=(
                    f"{name} has the same content as {same_content.file} (version {same_content.version}, "
                    f"{same_content.rows} rows, sha256 {sha256[:12]}...), which is already published: "
                    f"publishing it would count its rows twice; if it really is another file, "
                    f"publish it with --new-version {name}"
                ),
            )
        return Decision(Action.PUBLISH, version=1)
    same = entry.sha256 == sha256 and entry.size == size
    if same and entry.status == PUBLISHED:
        return Decision(Action.SKIP_PUBLISHED, entry.version, reason=f"published as version {entry.version}")
    if same and entry.status == IN_PROGRESS:
        return Decision(Action.RESUME, entry.version, lines_done=entry.lines_done)
    if allow_new_version:
        return Decision(Action.PUBLISH, version=entry.version + 1)
    return Decision(
        Action.REFUSE_CHANGED,
        entry.version,
        reason=(
            f"{name} changed after it was published (version {entry.version}: {entry.size} bytes, "
            f"sha256 {entry.sha256[:12]}...; now {size} bytes, sha256 {sha256[:12]}...); "
            "publish it as a new version with --new-version to send it again"
        ),
    )
