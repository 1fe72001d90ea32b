"""`make bench`, item 6: the producer's peak memory publishing one click file of 2 GiB, which must stay
under 300 MiB: the file is read in blocks of whole lines, and the client's queue is bounded.

The file is the rows of every click file of the benchmark's data, over and over, under one header
(rows may repeat: the producer publishes each line of a file).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from app.settings import REPO_ROOT, Settings
from app.tools.bench.common import timed

log = logging.getLogger(__name__)

LARGE_FILE_BYTES = 2 * 2**30
MEMORY_GOAL_MIB = 300


@dataclass(frozen=True)
class LargeFileRun:
    size: int
    rows: int
    seconds: float
    peak_rss_mib: float


def write_large_file(data_dir: Path, path: Path, size: int) -> int:
    """A click file of at least `size` bytes from the rows of `data_dir`'s click files; its rows."""
    sources = sorted(data_dir.glob("clicks_hour_*.csv"))
    if not sources:
        raise SystemExit(f"no click files in {data_dir}")
    header = sources[0].read_bytes().split(b"\n", 1)[0] + b"\n"
    bodies = [source.read_bytes().split(b"\n", 1)[1] for source in sources]
    rows, written = 0, 0
    with path.open("wb") as output:
        output.write(header)
        written += len(header)
        while written < size:
            for body in bodies:
                body = body if body.endswith(b"\n") or not body else body + b"\n"
                output.write(body)
                written += len(body)
                rows += body.count(b"\n")
                if written >= size:
                    break
    return rows


def large_file_run(settings: Settings, data_dir: Path, scratch: Path, size: int = LARGE_FILE_BYTES) -> LargeFileRun:
    folder = scratch / "large-file"
    folder.mkdir(parents=True)
    path = folder / "clicks_hour_900.csv"
    rows = write_large_file(data_dir, path, size)
    own = replace(settings, producer_data_root_directory=folder, producer_file_stable_seconds=0.0)
    log.info("publishing %s (%.1f GiB, %s rows)", path.name, path.stat().st_size / 2**30, rows)
    try:
        run = timed(
            [sys.executable, "-m", "app.producer", "publish", "--json"],
            {**os.environ, **own.environment()},
            REPO_ROOT,
            "our producer on the large file",
        )
    finally:
        path.unlink()
    published = int(json.loads(run.stdout)["rows"])
    if published != rows:
        raise SystemExit(f"the large file has {rows} rows, the producer published {published}")
    return LargeFileRun(size, rows, run.seconds, run.peak_rss_mib)


def large_file_section(run: LargeFileRun) -> list[str]:
    met = run.peak_rss_mib < MEMORY_GOAL_MIB
    return [
        f"- our producer publishing one click file of {run.size / 2**30:.1f} GiB ({run.rows:,} rows, "
        f"{run.rows / run.seconds:,.0f} rows/s): **peak {run.peak_rss_mib:.0f} MiB** "
        f"(goal: under {MEMORY_GOAL_MIB} MiB): " + ("met." if met else "missed."),
    ]
