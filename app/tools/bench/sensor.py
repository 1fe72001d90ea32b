"""`make bench`, item 8: the sensor's poll (`wait_for_new_files`, `app.airflow.tasks.pending_files`)
of a folder of 10,000 published files, beside what any poll must do: list the folder and look at
each file's size and time.

The files are one-row click files, each a different row, published once by the producer; the poll
then finds nothing to publish. It reads the ledger topic to its end and compares each file's size
and modification time with its ledger entry: a published file is neither read nor hashed again.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path

from app.settings import Settings
from app.tools.bench.common import listing, median_of

log = logging.getLogger(__name__)

FILES = 10_000
POLL_GOAL_SECONDS = 1.0


@dataclass(frozen=True)
class SensorRuns:
    files: int
    publish_seconds: float  # publishing them all once (one transaction per file)
    polls: list[float]  # the sensor's poll, each
    listings: list[float]  # listing the folder and stat-ing each file, each


def one_row_files(folder: Path, source: Path, prefix: str, count: int) -> None:
    """`count` click files of one row each, every row different (another user id), from the first
    row of `source`."""
    folder.mkdir(parents=True, exist_ok=True)
    header, first = source.read_text().splitlines()[:2]
    fields = first.split(",")
    for number in range(count):
        fields[0] = str(10_000_000 + number)  # user_id: no two files have the same content
        (folder / f"{prefix}{number:05d}.csv").write_text(f"{header}\n{','.join(fields)}\n")


def sensor_runs(settings: Settings, data_dir: Path, folder: Path, runs: int) -> SensorRuns:
    from app.airflow.tasks import pending_files
    from app.producer.publisher import publish

    source = sorted(data_dir.glob(f"{settings.producer_click_csv_data_prefix}*"))[0]
    one_row_files(folder, source, settings.producer_click_csv_data_prefix, FILES)
    own = replace(settings, producer_data_root_directory=folder)
    started = time.perf_counter()
    report = publish(own)
    publish_seconds = time.perf_counter() - started
    published = sum(1 for file in report.files if file.status == "published")
    if published != FILES:
        raise SystemExit(f"the sensor benchmark published {published} of {FILES} files")
    polls, listings = [], []
    for _ in range(runs):
        started = time.perf_counter()
        pending = pending_files(own)
        polls.append(time.perf_counter() - started)
        if pending:
            raise SystemExit(f"the poll found {len(pending)} file(s) to publish in a folder published whole")
        started = time.perf_counter()
        with os.scandir(folder) as entries:
            sizes = [entry.stat().st_size for entry in entries]
        listings.append(time.perf_counter() - started)
        assert len(sizes) == FILES
    log.info("sensor: %s files published in %.1f s; polls %s s; listings %s s", FILES, publish_seconds, polls, listings)
    return SensorRuns(FILES, publish_seconds, polls, listings)


def sensor_section(runs: SensorRuns) -> list[str]:
    poll = median_of(runs.polls)
    return [
        "## 8. The sensor's poll",
        "",
        f"A folder of {runs.files:,} one-row click files, every one published (in {runs.publish_seconds:,.0f} s, one "
        "transaction per file); then `wait_for_new_files`' poll (`app.airflow.tasks.pending_files`: the folder "
        "listed, the ledger topic read to its end, each file's size and modification time compared with its "
        "entry; a published file is neither read nor hashed), beside listing the folder and stat-ing each file.",
        "",
        "| | seconds (median) | runs |",
        "|---|---:|---|",
        f"| the sensor's poll | {poll:.2f} | {listing(runs.polls, 2)} |",
        f"| listing and stat-ing the files | {median_of(runs.listings):.2f} | {listing(runs.listings, 2)} |",
        "",
        f"**Poll {poll:.2f} s** (goal: under {POLL_GOAL_SECONDS:.0f} s): "
        + ("met." if poll < POLL_GOAL_SECONDS else "missed."),
        "",
    ]
