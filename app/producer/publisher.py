"""Publishing files to Kafka exactly once: one transaction per file, with its ledger entry inside.

`publish()` discovers the files, creates missing topics, starts a transactional, idempotent
producer (which fences any older producer with the same `PRODUCER_TRANSACTIONAL_ID` and so
aborts whatever a crashed run left open), reads the ledger, and then for each file decides:
publish, skip (already published), resume (a paced run stopped part-way) or refuse (changed
since it was published). A file's good rows, its rejects and its ledger entry are committed
together, so a `read_committed` reader sees all of a file or none of it, and never twice.

Paced runs (`PRODUCER_ITEM_WAIT_TIME` > 0, or a replay by click time) commit every second with a
progress entry in the ledger, so readers see the stream live and a crash resumes after the last
committed line, still without duplicates.

A large run that is not paced is split into shards published side by side, one producer process
each (`app/producer/shards.py`); every file is still one transaction with its ledger entry.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import zlib
from collections import Counter
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TextIO

from confluent_kafka import KafkaException, Producer

from app.event_time import EventTimeRules
from app.kafka_io import client_config, ensure_topics
from app.producer import report as status
from app.producer import shards
from app.producer.discovery import DataFile, FileKind, discover
from app.producer.ledger import (
    IN_PROGRESS,
    PUBLISHED,
    Action,
    LedgerEntry,
    Refusal,
    decide,
    hour_counts,
    read_ledger_state,
    refusal_key,
)
from app.producer.parsing import (
    FileContent,
    HeaderError,
    Message,
    MessageBatch,
    Reject,
    parse_chunks,
    read_chunks,
    read_file,
)
from app.producer.report import FileReport, PublishReport
from app.schemas import (
    HEADER_FILE_VERSION,
    HEADER_SCHEMA_VERSION,
    HEADER_SOURCE_FILE,
    HEADER_SOURCE_LINE,
    SCHEMA_VERSION,
)
from app.settings import Settings

log = logging.getLogger(__name__)

PACED_COMMIT_SECONDS = 1.0
Headers = list[tuple[str, str | bytes | None]]
CLICK_EVENT_TIME = "click_timestamp"


class ChangedWhilePublished(Exception):
    """The file's content hashed while publishing differs from its content hashed before."""


class PublishError(RuntimeError):
    """Publishing a file failed; its transaction was aborted, so nothing of it is visible."""


class Progress(Protocol):
    """Receives progress while files are published (the CLI draws a progress bar from it)."""

    def file_started(self, file: DataFile, lines: int) -> None: ...

    def lines_done(self, count: int) -> None: ...

    def file_finished(self, report: FileReport) -> None: ...


class _NoProgress:
    def file_started(self, file: DataFile, lines: int) -> None:
        pass

    def lines_done(self, count: int) -> None:
        pass

    def file_finished(self, report: FileReport) -> None:
        pass


def producer_config(settings: Settings) -> dict[str, Any]:
    """Transactional, idempotent, `acks=all`, batched and compressed for throughput."""
    return {
        **client_config(settings),
        "transactional.id": settings.producer_transactional_id,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 25,
        "batch.size": 1_000_000,
        "batch.num.messages": 100_000,
        "compression.type": "lz4",
        "queue.buffering.max.messages": 200_000,
        "queue.buffering.max.kbytes": 65_536,
        "transaction.timeout.ms": 600_000,
    }


@dataclass
class _FileRun:
    """State of one file's publication: counts and the offsets its data messages got."""

    file: DataFile
    version: int
    rows: int = 0
    rejected: int = 0
    lines_done: int = 1
    offsets: dict[str, list[int]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    hours: Counter[int] = field(default_factory=Counter)  # clicks published per epoch hour
    rejected_hours: Counter[int] = field(default_factory=Counter)  # clicks set aside for their time, per hour

    def count_hours(self, epoch_hours: Any) -> None:
        """Add a batch's click hours (a numpy array) to the per-hour counts."""
        import numpy as np

        found, counts = np.unique(epoch_hours, return_counts=True)
        self.hours.update(dict(zip(found.tolist(), counts.tolist(), strict=True)))

    def delivered(self, error: Any, message: Any) -> None:
        if error is not None:
            self.errors.append(str(error))
            return
        if message.topic() != self.file.topic:
            return
        partition, offset = str(message.partition()), message.offset()
        span = self.offsets.get(partition)
        if span is None:
            self.offsets[partition] = [offset, offset]
        elif offset < span[0]:
            span[0] = offset
        elif offset > span[1]:
            span[1] = offset


@dataclass
class PublishOptions:
    dry_run: bool = False
    new_versions: Collection[str] = ()  # file names to publish again as a new version
    kinds: Collection[FileKind] = (FileKind.ARTICLES, FileKind.CLICKS)
    replay_speedup: float | None = None  # pace clicks by click time, this many times faster
    data_root: Path | None = None

    def to_plain(self) -> dict[str, Any]:
        """What a shard's child needs of the options (a shard is never paced nor a dry run)."""
        return {"new_versions": sorted(self.new_versions), "kinds": [kind.value for kind in self.kinds]}

    @classmethod
    def from_plain(cls, plain: dict[str, Any]) -> PublishOptions:
        return cls(new_versions=set(plain["new_versions"]), kinds=[FileKind(kind) for kind in plain["kinds"]])


class Publisher:
    def __init__(self, settings: Settings, progress: Progress | None = None) -> None:
        self.settings = settings
        self.progress: Progress = progress or _NoProgress()
        self.producer: Producer | None = None
        self._replay_origin: tuple[float, int] | None = None  # (monotonic start, first click ms)
        self._options = PublishOptions()
        self._published_content: dict[str, LedgerEntry] = {}
        self._refusals: dict[str, Refusal] = {}
        self._partition_counts: dict[str, int] = {}
        self._next_send = 0.0  # when the next paced message is due (time.monotonic)

    def publish(self, options: PublishOptions | None = None) -> PublishReport:
        options = self._options = options or PublishOptions()
        discovery = discover(self.settings, options.data_root)
        result = PublishReport(ignored=discovery.ignored)
        for name in discovery.ignored:
            log.info("ignored: %s (not a click or article file)", name)
        for name, reason in discovery.refused.items():
            log.error("refused: %s: %s", name, reason)
            fix = "remove the link, or move the file it points to into the data folder"
            result.files.append(FileReport(name, "", "", status.REFUSED, message=reason, fix=fix))
        files = [file for file in discovery.files if file.kind in options.kinds]
        ledger = self._start(options, fence_shards=True)
        try:
            result.files.extend(self._publish_files(files, ledger, options))
            self._mark_refused_before(result, discovery.root)
            if not options.dry_run:
                self._record_refusals(result, discovery.root)
        finally:
            if self.producer is not None:
                self.producer.flush(30)
        return result

    def publish_files(self, files: list[DataFile], options: PublishOptions) -> Iterator[FileReport]:
        """Publish `files` (topics created already), one report each: a shard's child does this."""
        self._options = options
        ledger = self._start(options, fence_shards=False)
        try:
            for file in files:
                yield self._publish_file(file, ledger.get(file.name), options)
        finally:
            if self.producer is not None:
                self.producer.flush(30)

    def _start(self, options: PublishOptions, fence_shards: bool) -> dict[str, LedgerEntry]:
        """The producer started (fencing an older one with its id, and with `fence_shards` the
        shards' ids too), then the ledger read: what is published."""
        if not options.dry_run:
            if fence_shards:
                ensure_topics(self.settings)
                shards.fence_shard_ids(self.settings, producer_config(self.settings))  # before the ledger is read
            self.producer = Producer(producer_config(self.settings))
            self.producer.init_transactions(60)  # fences an older producer and aborts its open transaction
        state = read_ledger_state(self.settings)
        self._refusals = state.refusals
        # published content by sha256, to recognise a file copied under a second name
        self._published_content = {entry.sha256: entry for entry in state.files.values() if entry.rows > 0}
        return state.files

    def _publish_files(
        self, files: list[DataFile], ledger: dict[str, LedgerEntry], options: PublishOptions
    ) -> list[FileReport]:
        """The files in their order (articles first) in this process or, for a large unpaced run, in
        shards side by side, each shard in that order."""
        parts = self._shards(files, ledger, options)
        if len(parts) <= 1:
            return [self._publish_file(file, ledger.get(file.name), options) for file in files]
        log.info("publishing %s files in %s processes side by side", len(files), len(parts))
        children = []
        reports: dict[str, FileReport] = {}
        try:
            for number, part in enumerate(parts[1:], 1):
                children.append(
                    shards.ShardProcess(self.settings, number, part, options.to_plain(), self._child_published)
                )
            own_error: PublishError | None = None
            try:
                for file in parts[0]:
                    reports[file.name] = self._publish_file(file, ledger.get(file.name), options)
            except PublishError as error:  # the other shards still publish their files
                own_error = error
            for child in children:
                try:
                    reports.update((report.file, report) for report in child.wait())
                except shards.ShardFailed as error:
                    own_error = own_error or PublishError(str(error))
        except BaseException:
            for child in children:
                child.stop()
            raise
        if own_error is not None:
            raise own_error
        unreported = [file.name for file in files if file.name not in reports]
        if unreported:
            raise PublishError(f"the producer processes reported nothing of {', '.join(unreported)}")
        return [reports[file.name] for file in files]

    def _child_published(self, report: FileReport) -> None:
        if report.status == status.PUBLISHED:
            self.progress.file_finished(report)

    def _shards(
        self, files: list[DataFile], ledger: dict[str, LedgerEntry], options: PublishOptions
    ) -> list[list[DataFile]]:
        """One shard unless the run is unpaced, sends, and has `PARALLEL_MIN_BYTES` or more to read."""
        count = shards.process_count(self.settings)
        paced = self.settings.producer_item_wait_time > 0 or options.replay_speedup is not None
        if count <= 1 or paced or options.dry_run or len(files) < 2:
            return [files]
        sizes: dict[str, int] = {}
        for file in files:
            try:
                on_disk = file.path.stat()
            except OSError:
                on_disk = None
            entry = ledger.get(file.name)
            if on_disk is None:
                sizes[file.name] = -1
            elif (
                entry is not None
                and file.name not in options.new_versions
                and entry.unchanged_on_disk(on_disk.st_size, on_disk.st_mtime_ns)
            ):
                sizes[file.name] = 0  # published and unchanged: not read again
            else:
                sizes[file.name] = on_disk.st_size
        if sum(size for size in sizes.values() if size > 0) < shards.PARALLEL_MIN_BYTES:
            return [files]
        return shards.shard_files(files, sizes, count)

    def _publish_file(self, file: DataFile, entry: LedgerEntry | None, options: PublishOptions) -> FileReport:
        started = time.monotonic()
        report = FileReport(file.name, file.kind.value, file.topic, status.REFUSED)
        on_disk = file.path.stat()
        if (
            entry is not None
            and file.name not in options.new_versions
            and entry.unchanged_on_disk(on_disk.st_size, on_disk.st_mtime_ns)
        ):
            # a poll of a folder of published files reads none of them
            return self._already_published(
                report, entry, f"published as version {entry.version}; size and time unchanged"
            )
        refusal = self._refusals.get(file.name)
        if (
            refusal is not None
            and file.name not in options.new_versions
            and refusal.unchanged_on_disk(on_disk.st_size, on_disk.st_mtime_ns)
        ):
            # refused before and not changed since: refused again without reading it
            report.message, report.fix = refusal.reason, refusal.fix
            log.error("refused (unchanged since %s): %s", refusal.refused_at, refusal.reason)
            return report
        age = time.time() - on_disk.st_mtime
        if age < self.settings.producer_file_stable_seconds:
            report.status = status.SKIPPED_UNSTABLE
            report.message = f"modified {age:.1f} s ago; still being written? (PRODUCER_FILE_STABLE_SECONDS)"
            log.warning("skipped: %s: %s", file.name, report.message)
            return report
        try:
            content = read_file(file.path)
        except HeaderError as error:
            report.message, report.fix = str(error), _content_fix(file, error)
            log.error("refused: %s", error)
            return report
        same_content = self._published_content.get(content.sha256)
        if same_content is not None and same_content.file == file.name:
            same_content = None
        decision = decide(
            entry, content.size, content.sha256, file.name, file.name in options.new_versions, same_content
        )
        report.version = decision.version
        if decision.action is Action.SKIP_PUBLISHED:
            assert entry is not None
            return self._already_published(report, entry, decision.reason)
        if decision.action in (Action.REFUSE_CHANGED, Action.REFUSE_DUPLICATE):
            report.message = decision.reason
            new_version = f'make publish ARGS="--new-version {file.name}"'
            report.fix = (
                f"publish it as a new version: {new_version}"
                if decision.action is Action.REFUSE_CHANGED
                else f"remove it if it is a copy; if it is another file, {new_version}"
            )
            log.error("refused: %s", decision.reason)
            return report
        try:
            run = self._send_file(file, content, decision.version, decision.lines_done, entry, options)
        except HeaderError as error:
            report.message, report.fix = str(error), _content_fix(file, error)
            log.error("refused: %s", error)
            return report
        except ChangedWhilePublished:
            report.status = status.SKIPPED_UNSTABLE
            report.message = "changed while it was being published (its transaction was aborted); next run"
            log.warning("skipped: %s: %s", file.name, report.message)
            return report
        report.rows, report.rejected, report.offsets = run.rows, run.rejected, run.offsets
        report.status = status.WOULD_PUBLISH if options.dry_run else status.PUBLISHED
        report.seconds = round(time.monotonic() - started, 3)
        log.info(
            "%s: %s version %s: %s rows, %s rejected, %.2f s",
            report.status,
            file.name,
            report.version,
            report.rows,
            report.rejected,
            report.seconds,
        )
        self.progress.file_finished(report)
        return report

    @staticmethod
    def _already_published(report: FileReport, entry: LedgerEntry, reason: str) -> FileReport:
        report.version, report.status, report.message = entry.version, status.ALREADY_PUBLISHED, reason
        report.rows, report.rejected, report.offsets = entry.rows, entry.rejected, entry.offsets
        log.info("already published: %s (%s)", report.file, reason)
        return report

    def _send_file(
        self,
        file: DataFile,
        content: FileContent,
        version: int,
        lines_done: int,
        entry: LedgerEntry | None,
        options: PublishOptions,
    ) -> _FileRun:
        run = _FileRun(file, version, lines_done=lines_done)
        if entry is not None and lines_done > 1:  # resuming a paced publication
            run.rows, run.rejected, run.offsets = entry.rows, entry.rejected, dict(entry.offsets)
            run.hours.update(entry.epoch_hours(entry.hours))
            run.rejected_hours.update(entry.epoch_hours(entry.rejected_hours))
        event_time = CLICK_EVENT_TIME if file.kind is FileKind.CLICKS and options.replay_speedup else None
        rules = EventTimeRules.from_settings(self.settings)
        paced = self.settings.producer_item_wait_time > 0 or event_time is not None
        digest = hashlib.sha256()  # of what is parsed now, compared with `content.sha256` at the commit
        items = parse_chunks(
            _hashing(read_chunks(file.path), digest), file.kind.schema, file.name, event_time, rules, columnar=not paced
        )  # header checked on first next()
        if options.dry_run or self.producer is None:
            for item in items:
                run.rows += len(item.keys) if isinstance(item, MessageBatch) else isinstance(item, Message)
                run.rejected += isinstance(item, Reject)
            return run
        producer = self.producer
        self.progress.file_started(file, content.lines)
        headers_base: Headers = [
            (HEADER_SOURCE_FILE, file.name.encode()),
            (HEADER_SCHEMA_VERSION, str(SCHEMA_VERSION).encode()),
            (HEADER_FILE_VERSION, str(version).encode()),
        ]
        producer.begin_transaction()
        last_commit = time.monotonic()
        pending_progress = 0
        try:
            for item in items:
                if item.line <= run.lines_done:
                    continue
                if isinstance(item, MessageBatch):
                    sent = self._produce_batch(run, item, headers_base)
                    run.rows += sent
                    run.lines_done = item.line
                    self.progress.lines_done(pending_progress + sent)
                    pending_progress = 0
                    continue
                headers: Headers = [*headers_base, (HEADER_SOURCE_LINE, str(item.line).encode())]
                if isinstance(item, Message):
                    self._produce(file.topic, item.key, item.value, headers, run.delivered)
                    run.rows += 1
                    if item.click_hour is not None:
                        run.hours[item.click_hour] += 1
                    self._pace(item)
                else:
                    self._produce(
                        self.settings.kafka_rejects_topic,
                        file.name.encode(),
                        _reject_value(file, item),
                        headers,
                        run.delivered,
                    )
                    run.rejected += 1
                    if item.click_hour is not None:
                        run.rejected_hours[item.click_hour] += 1
                    log.warning("rejected: %s line %s: %s", file.name, item.line, item.reason)
                run.lines_done = item.line
                pending_progress += 1
                if pending_progress >= 2000:
                    producer.poll(0)
                    self.progress.lines_done(pending_progress)
                    pending_progress = 0
                if paced and time.monotonic() - last_commit >= PACED_COMMIT_SECONDS:
                    self._commit(run, content, IN_PROGRESS)
                    producer.begin_transaction()
                    last_commit = time.monotonic()
            self.progress.lines_done(pending_progress)
            if digest.hexdigest() != content.sha256:
                raise ChangedWhilePublished(file.name)
            self._commit(run, content, PUBLISHED)
        except (HeaderError, ChangedWhilePublished):
            _abort_quietly(producer)
            raise
        except (KafkaException, PublishError, BufferError) as error:
            _abort_quietly(producer)
            raise PublishError(f"{file.name}: publishing failed, its open transaction was aborted: {error}") from error
        except BaseException:
            _abort_quietly(producer)
            raise
        return run

    def _produce_batch(self, run: _FileRun, batch: MessageBatch, headers_base: Headers) -> int:
        """The batch's messages from the first line not sent yet; how many were sent. The per-message
        work is the produce() call and its line header. Each message goes to the partition the
        client's own partitioner would pick (CRC-32 of the key), so the batch's first and last message
        of each partition are known: only those report their delivery (their offsets bound the
        file's range in that partition). Any other message that fails fails the transaction's commit."""
        assert self.producer is not None
        produce, poll, topic, delivered = self.producer.produce, self.producer.poll, run.file.topic, run.delivered
        source, schema_version, file_version = headers_base
        skip = max(0, run.lines_done - batch.first_line + 1)
        keys, values = batch.keys[skip:], batch.values[skip:]
        if batch.click_hours is not None:
            run.count_hours(batch.click_hours[skip:])
        count = self._partition_count(topic)
        partitions = [zlib.crc32(key) % count for key in keys]
        firsts: dict[int, int] = {}
        lasts: dict[int, int] = {}
        for index, partition in enumerate(partitions):
            firsts.setdefault(partition, index)
            lasts[partition] = index
        reported = {*firsts.values(), *lasts.values()}
        line = batch.first_line + skip
        for index, (key, value, partition) in enumerate(zip(keys, values, partitions, strict=True)):
            headers = [source, schema_version, file_version, (HEADER_SOURCE_LINE, b"%d" % line)]
            on_delivery = delivered if index in reported else None
            try:
                produce(topic, value, key, partition, headers=headers, on_delivery=on_delivery)
            except BufferError:  # the local queue is full: let deliveries drain it, then this one
                self._produce(topic, key, value, headers, on_delivery, partition)
            line += 1
            if line % 2000 == 0:
                poll(0)
        return len(keys)

    def _partition_count(self, topic: str) -> int:
        if topic not in self._partition_counts:
            assert self.producer is not None
            self._partition_counts[topic] = len(self.producer.list_topics(topic, timeout=30).topics[topic].partitions)
        return self._partition_counts[topic]

    def _mark_refused_before(self, result: PublishReport, root: Path) -> None:
        """Flag each refusal the ledger holds already for the file as it is now (same reason, size and
        time): the sensor does not count those as new, and they are not written again."""
        for report in result.refused:
            known, on_disk = self._refusals.get(report.file), _on_disk(report, root)
            report.refused_before = (
                known is not None
                and on_disk is not None
                and known.reason == report.message
                and known.unchanged_on_disk(on_disk.st_size, on_disk.st_mtime_ns)
            )

    def _record_refusals(self, result: PublishReport, root: Path) -> None:
        """Write each refused file's refusal to the ledger (one transaction), unless the ledger has it
        already for the file as it is: the next poll and the pipeline view see it, and an unchanged
        file is refused again without being read. The refusals of files gone from the folder go."""
        assert self.producer is not None
        now = datetime.now(UTC).isoformat(timespec="seconds")
        new: dict[str, Refusal] = {}
        for report in result.refused:
            on_disk = _on_disk(report, root)
            if on_disk is not None and not report.refused_before:
                new[report.file] = Refusal(
                    report.file, report.message, report.fix, on_disk.st_size, on_disk.st_mtime_ns, now
                )
        # a refused file that is gone from the folder is refused no more
        gone = [name for name in self._refusals if name not in new and not os.path.lexists(root / name)]
        if not new and not gone:
            return
        errors: list[str] = []
        self.producer.begin_transaction()
        try:
            for name, value in [*((r.file, r.to_json()) for r in new.values()), *((name, None) for name in gone)]:
                self._produce(
                    self.settings.kafka_ledger_topic,
                    refusal_key(name),
                    value,
                    [],
                    lambda error, _message: errors.append(str(error)) if error is not None else None,
                )
            self.producer.flush(60)
            if errors:
                raise PublishError(f"recording {len(new)} refusal(s) in the ledger failed: {errors[0]}")
            self.producer.commit_transaction(60)
        except (KafkaException, BufferError, PublishError) as error:
            _abort_quietly(self.producer)
            log.warning("the refusals were not recorded (they are reported all the same): %s", error)
            return
        self._refusals.update(new)
        for name in gone:
            del self._refusals[name]

    def _produce(
        self,
        topic: str,
        key: bytes,
        value: bytes | None,
        headers: Headers,
        on_delivery: Callable[..., None] | None,
        partition: int = -1,  # -1: the client's partitioner picks
    ) -> None:
        assert self.producer is not None
        while True:
            try:
                self.producer.produce(topic, value, key, partition, headers=headers, on_delivery=on_delivery)
                return
            except BufferError:  # the local queue is full: let deliveries drain it
                self.producer.poll(0.05)

    def _pace(self, message: Message) -> None:
        wait = self.settings.producer_item_wait_time
        if wait > 0:  # keep to one message every `wait` seconds: sleep only when ahead of that pace
            now = time.monotonic()
            self._next_send = max(self._next_send, now - wait) + wait  # a stall is not made up for
            if self._next_send > now:
                time.sleep(self._next_send - now)
        if message.event_time_ms is None:
            return
        speedup = self._options.replay_speedup or 1.0
        if self._replay_origin is None:
            self._replay_origin = (time.monotonic(), message.event_time_ms)
        started, first_ms = self._replay_origin
        ahead = (message.event_time_ms - first_ms) / 1000 / speedup - (time.monotonic() - started)
        if ahead > 0:
            assert self.producer is not None
            self.producer.poll(0)
            time.sleep(ahead)

    def _commit(self, run: _FileRun, content: FileContent, state: str) -> None:
        assert self.producer is not None
        self.producer.flush(120)  # every data message delivered, so its offset is known
        if run.errors:
            raise PublishError(f"{len(run.errors)} message(s) not delivered, first: {run.errors[0]}")
        entry = LedgerEntry(
            file=run.file.name,
            kind=run.file.kind.value,
            topic=run.file.topic,
            version=run.version,
            size=content.size,
            sha256=content.sha256,
            status=state,
            lines_done=run.lines_done,
            rows=run.rows,
            rejected=run.rejected,
            offsets=run.offsets,
            hours=hour_counts(run.hours),
            rejected_hours=hour_counts(run.rejected_hours),
            published_at=datetime.now(UTC).isoformat(timespec="seconds"),
            schema_version=SCHEMA_VERSION,
            mtime_ns=content.mtime_ns,
        )
        self._produce(self.settings.kafka_ledger_topic, run.file.name.encode(), entry.to_json(), [], run.delivered)
        if state == PUBLISHED and self._refusals.pop(run.file.name, None) is not None:
            # published now: its refusal goes, in the same transaction
            self._produce(self.settings.kafka_ledger_topic, refusal_key(run.file.name), None, [], run.delivered)
        self.producer.commit_transaction(120)
        if state == PUBLISHED and entry.rows > 0:
            self._published_content[entry.sha256] = entry  # a copy later in this run is recognised too


def _hashing(blocks: Iterator[bytes], digest: Any) -> Iterator[bytes]:
    """`blocks` as they are, each added to `digest` on its way."""
    for block in blocks:
        digest.update(block)
        yield block


def _on_disk(report: FileReport, root: Path) -> os.stat_result | None:
    """A refused file's size and time as it is now (a refused link's own), None once it is gone."""
    try:
        return (root / report.file).lstat() if report.kind == "" else (root / report.file).stat()
    except OSError:
        return None


def _content_fix(file: DataFile, error: HeaderError) -> str:
    """What to do about a file whose content was refused whole."""
    if "gzip" in str(error):
        return f"replace it with a complete copy (`gzip -t {file.path.name}` checks one), or remove it"
    columns = ", ".join(file.kind.schema.columns)
    return f"fix its header (the first line must name the columns {columns}), or remove it"


def _reject_value(file: DataFile, reject: Reject) -> bytes:
    return json.dumps(
        {"file": file.name, "line": reject.line, "reason": reject.reason, "raw": reject.raw, "topic": file.topic},
        separators=(",", ":"),
    ).encode()


def _abort_quietly(producer: Producer) -> None:
    # what was sent is delivered first (at most 10 s; a broker away is waited for no longer): an
    # abort while sends are in flight can fail for good with INVALID_TXN_STATE, after a committed
    # transaction on Kafka 4 (librdkafka issue 4849; `test_a_file_changed_between_...` hits it)
    producer.flush(10)
    try:
        producer.abort_transaction(30)
    except KafkaException as error:  # the transaction may be gone already (fenced, timed out)
        log.warning("abort_transaction: %s", error)


def publish_shard(settings: Settings, request: str, out: TextIO) -> int:
    """A shard's child: publishes the files of `request` and writes each file's report to `out`
    as a line of JSON; a failure is written there too, for the parent to raise."""
    files, options = shards.read_request(request)
    try:
        for report in Publisher(settings).publish_files(files, PublishOptions.from_plain(options)):
            print(shards.report_line(report), file=out, flush=True)
    except Exception as error:  # the parent fails the run once the other shards are done
        log.exception("publishing this shard failed")
        print(shards.error_line(error), file=out, flush=True)
        return 1
    return 0


def publish(
    settings: Settings, options: PublishOptions | None = None, progress: Progress | None = None
) -> PublishReport:
    """Publish what is new in the data folder; the library entry point the CLI and Airflow use."""
    return Publisher(settings, progress).publish(options)
