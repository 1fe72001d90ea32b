"""Publishing a large run's files side by side, one producer process per shard of them.

One Python process publishes at most about 250k records/s on our test machines, bound by the
per-message `produce()` call (see `docs/design/producer.md`). A run with at least
`PARALLEL_MIN_BYTES` to publish, not paced and not a dry run, is therefore split into
`PRODUCER_PROCESSES` shards of about equal bytes: the calling process publishes the first, and
each other shard runs in a child process (`python -m app.producer shard`) with a transactional id
of its own, `<PRODUCER_TRANSACTIONAL_ID>-shard-<n>`. Nothing else changes: each file is still one
transaction with its ledger entry inside, and the children report each file back as a line of JSON.

- Copies of one content (which the ledger refuses under a second name) have the same size, and
  files of one size share a shard, so a copy is met after its original as in one process.
- Articles are published before clicks: the caller shards each kind on its own, in that order.
- Every run fences every shard's id before it reads the ledger (`fence_shard_ids`), so a shard
  of a killed run can neither commit after that read nor leave a transaction open that would
  hold `read_committed` readers back until it times out.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from app.producer.discovery import DataFile, FileKind
from app.producer.report import FileReport
from app.settings import REPO_ROOT, SPECS, Settings

log = logging.getLogger(__name__)

PARALLEL_MIN_BYTES = 16 * 2**20  # below it, a child's start (about 0.5 s) costs more than it saves
MAX_AUTO_PROCESSES = 4  # PRODUCER_PROCESSES=0: one per core, at most this many
KAFKA_SECRETS = ("KAFKA_SASL_PASSWORD", "KAFKA_CLIENT_CONFIG")  # what a child's Kafka client needs


def process_count(settings: Settings) -> int:
    """How many producer processes a large run uses (`PRODUCER_PROCESSES`; 0: one per core)."""
    if settings.producer_processes > 0:
        return settings.producer_processes
    return max(1, min(os.cpu_count() or 1, MAX_AUTO_PROCESSES))


def fence_shard_ids(settings: Settings, config: dict[str, Any]) -> None:
    """Every shard id a run may have used (those of `PRODUCER_PROCESSES`, and of the default's four
    at least) fenced: what a killed run's shard left open is aborted, and that shard can no longer
    commit. `config` is the producer's. About 60 ms, the ids side by side."""
    from concurrent.futures import ThreadPoolExecutor

    from confluent_kafka import Producer

    shards = range(1, max(process_count(settings), MAX_AUTO_PROCESSES))
    fences = [Producer({**config, "transactional.id": shard_transactional_id(settings, shard)}) for shard in shards]
    with ThreadPoolExecutor(len(fences) or 1) as pool:
        list(pool.map(lambda fence: fence.init_transactions(60), fences))


def shard_transactional_id(settings: Settings, shard: int) -> str:
    """Shard 0 is the calling process, with the run's own transactional id."""
    return settings.producer_transactional_id if shard == 0 else f"{settings.producer_transactional_id}-shard-{shard}"


def shard_files(files: list[DataFile], sizes: Mapping[str, int], count: int) -> list[list[DataFile]]:
    """`files` in at most `count` non-empty shards of about equal bytes (largest groups first, each
    to the lightest shard). Files of one size stay together; each shard keeps the files' order."""
    groups: dict[int, list[DataFile]] = {}
    for file in files:
        groups.setdefault(sizes[file.name], []).append(file)
    shards: list[list[DataFile]] = [[] for _ in range(max(1, count))]
    loads = [0] * len(shards)
    for size, group in sorted(groups.items(), key=lambda item: -item[0] * len(item[1])):
        lightest = loads.index(min(loads))
        shards[lightest].extend(group)
        loads[lightest] += size * len(group)
    order = {file.name: index for index, file in enumerate(files)}
    return [sorted(shard, key=lambda file: order[file.name]) for shard in shards if shard]


def child_environment(settings: Settings, shard: int) -> dict[str, str]:
    """The run's settings for a shard's child, with the shard's transactional id and the Kafka
    client's secrets (which `Settings.environment` leaves out)."""
    environment = {
        **os.environ,
        **replace(settings, producer_transactional_id=shard_transactional_id(settings, shard)).environment(),
    }
    for spec in SPECS:
        if spec.variable in KAFKA_SECRETS:
            environment[spec.variable] = str(getattr(settings, spec.field))
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), environment.get("PYTHONPATH")]))
    return environment


class ShardFailed(RuntimeError):
    """A shard's child failed; what it said, or its exit status."""


def request(files: list[DataFile], options: dict[str, Any]) -> str:
    """What a shard's child reads on its stdin: its files and the run's options (plain data)."""
    plain = [{"path": str(f.path), "name": f.name, "kind": f.kind.value, "topic": f.topic} for f in files]
    return json.dumps({"files": plain, "options": options})


def read_request(text: str) -> tuple[list[DataFile], dict[str, Any]]:
    message = json.loads(text)
    files = [DataFile(Path(f["path"]), f["name"], FileKind(f["kind"]), f["topic"]) for f in message["files"]]
    return files, message["options"]


def report_line(report: FileReport) -> str:
    """One file's report, as a shard's child writes it on its stdout."""
    return json.dumps({"report": asdict(report)})


def error_line(error: BaseException) -> str:
    return json.dumps({"error": f"{type(error).__name__}: {error}"})


def read_answer(line: str) -> FileReport | str | None:
    """A line of a shard's child: a file's report, what failed, or None for anything else (a
    library printing to stdout must not stop the parent reading)."""
    try:
        message = json.loads(line)
    except ValueError:
        return None
    if isinstance(message, dict) and isinstance(message.get("report"), dict):
        return FileReport(**message["report"])
    if isinstance(message, dict) and isinstance(message.get("error"), str):
        return str(message["error"])
    return None


class ShardProcess:
    """A child publishing one shard; `wait()` gives its files' reports, or raises what failed."""

    def __init__(self, settings: Settings, shard: int, files: list[DataFile], options: dict[str, Any],
                 on_report: Callable[[FileReport], None]) -> None:  # fmt: skip
        self.shard, self.error = shard, ""
        self.reports: list[FileReport] = []
        self._on_report = on_report
        self.process = subprocess.Popen(
            [sys.executable, "-m", "app.producer", "shard"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=child_environment(settings, shard),
            cwd=REPO_ROOT,
            text=True,
        )
        assert self.process.stdin is not None
        self.process.stdin.write(request(files, options))
        self.process.stdin.close()
        self._reader = threading.Thread(target=self._read, name=f"producer-shard-{shard}", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            answer = read_answer(line)
            if isinstance(answer, FileReport):
                self.reports.append(answer)
                self._on_report(answer)
            elif isinstance(answer, str):
                self.error = answer
            else:
                log.warning("producer process %s printed: %s", self.shard, line.rstrip())

    def wait(self) -> list[FileReport]:
        code = self.process.wait()
        self._reader.join()
        if self.error or code != 0:
            raise ShardFailed(f"producer process {self.shard} failed: {self.error or f'exit status {code}'}")
        return self.reports

    def stop(self) -> None:
        """Ends the child (its open transaction is aborted by the next run's fencing)."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
