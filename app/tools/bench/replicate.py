"""The click files of a data set replicated N times, for the scale series (`1x`, `3x`, `10x`).

Copy 0 is the data set itself. Copy `i` is every click of it with:
- `user_id` moved up by `i` times one more than the largest user id, so no user is in two copies;
- `session_start` and `click_timestamp` moved later by `i` times a whole number of weeks (the data
  set's span rounded up, plus one), so each copy keeps the days of the week and the hours of the
  day of the original, and its sessions start after the original's;
- `session_id` (the session's start in milliseconds x 1000 plus a counter, in the Globo set)
  moved up by the same shift x 1000, which keeps that form and, the shift being longer than the
  ids' range, keeps every copy's ids apart;
- the file `clicks_hour_NNN.csv` renamed after the hour it now covers: `NNN` + `i` x the shift in
  hours.
Every other column is unchanged; the article catalogue is shared (the same articles are read
again), so every copy joins with it as the original does. The output is deterministic: the same
input and count give the same bytes. Memory holds one file at a time.

`python -m app.tools.bench.replicate --copies 10 SOURCE TARGET`
"""

from __future__ import annotations

import argparse
import logging
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from app.tools.bench.common import link_or_copy

log = logging.getLogger(__name__)

WEEK_MS = 7 * 24 * 3600 * 1000
HOUR_MS = 3600 * 1000
CLICK_FILE = re.compile(r"clicks_hour_(\d+)\.csv")
CATALOGUE = "articles_metadata.csv"
SHIFTED = ("user_id", "session_id", "session_start", "click_timestamp")


@dataclass(frozen=True)
class Layout:
    """How far apart the copies are: in user ids, and in time (a whole number of weeks)."""

    user_stride: int
    shift_ms: int

    @property
    def shift_hours(self) -> int:
        return self.shift_ms // HOUR_MS

    def session_stride(self) -> int:
        return self.shift_ms * 1000


def click_files(source: Path) -> list[Path]:
    found = {*source.glob("clicks_hour_*.csv"), *source.glob("clicks/clicks_hour_*.csv")}  # as BENCH_DATA_DIR
    files = sorted(found, key=lambda path: int(_number(path)))
    if not files:
        raise SystemExit(f"no clicks_hour_*.csv in {source}")
    return files


def _number(path: Path) -> str:
    match = CLICK_FILE.fullmatch(path.name)
    if match is None:
        raise SystemExit(f"{path}: not a click file name (clicks_hour_NNN.csv)")
    return match.group(1)


def layout_of(files: list[Path]) -> Layout:
    """The strides that keep copies apart, from one pass over the files' id and time columns."""
    max_user = 0
    earliest = latest = None
    min_session = max_session = None
    for path in files:
        frame = pd.read_csv(path, usecols=list(SHIFTED), dtype="int64")
        if frame.empty:
            continue
        max_user = max(max_user, int(frame["user_id"].max()))
        first = int(min(frame["session_start"].min(), frame["click_timestamp"].min()))
        last = int(max(frame["session_start"].max(), frame["click_timestamp"].max()))
        earliest = first if earliest is None else min(earliest, first)
        latest = last if latest is None else max(latest, last)
        low, high = int(frame["session_id"].min()), int(frame["session_id"].max())
        min_session = low if min_session is None else min(min_session, low)
        max_session = high if max_session is None else max(max_session, high)
    if earliest is None or latest is None or min_session is None or max_session is None:
        raise SystemExit("the click files hold no clicks")
    weeks = math.floor((latest - earliest) / WEEK_MS) + 1
    # the session ids' range must fit in one stride too (they are start x 1000 + a counter in Globo's set)
    weeks = max(weeks, math.floor((max_session - min_session) / (WEEK_MS * 1000)) + 1)
    return Layout(user_stride=max_user + 1, shift_ms=weeks * WEEK_MS)


def copy_frame(frame: pd.DataFrame, layout: Layout, copy: int) -> pd.DataFrame:
    """Copy number `copy` of one file's clicks (copy 0 is the frame itself)."""
    if copy == 0:
        return frame
    shifted = frame.copy()
    shifted["user_id"] += copy * layout.user_stride
    shifted["session_id"] += copy * layout.session_stride()
    shifted["session_start"] += copy * layout.shift_ms
    shifted["click_timestamp"] += copy * layout.shift_ms
    return shifted


def copy_name(path: Path, layout: Layout, copy: int) -> str:
    number = _number(path)
    return f"clicks_hour_{int(number) + copy * layout.shift_hours:0{len(number)}d}.csv"


def replicate(source: Path, target: Path, copies: int) -> Layout:
    """`copies` copies of `source`'s click files in `target` (copy 0 linked, not rewritten), and its
    catalogue; returns the layout used."""
    if copies < 1:
        raise SystemExit(f"--copies {copies}: at least 1")
    files = click_files(source)
    layout = layout_of(files)
    target.mkdir(parents=True, exist_ok=True)
    for path in [*files, *[p for p in [source / CATALOGUE] if p.exists()]]:
        link_or_copy(path, target / path.name)
    for copy in range(1, copies):
        for path in files:
            frame = pd.read_csv(path, dtype=str, na_filter=False)  # the other columns' text as it is
            shifted = copy_frame(frame[list(SHIFTED)].astype("int64"), layout, copy)
            for column in SHIFTED:
                frame[column] = shifted[column].astype(str)
            frame.to_csv(target / copy_name(path, layout, copy), index=False)
    log.info("%s copies of %s click files in %s (users +%s, time +%s h per copy)",
             copies, len(files), target, layout.user_stride, layout.shift_hours)  # fmt: skip
    return layout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.tools.bench.replicate", description=__doc__)
    parser.add_argument("--copies", type=int, required=True, help="how many times the data set (1 = itself)")
    parser.add_argument("source", type=Path, help="folder of clicks_hour_*.csv (and articles_metadata.csv)")
    parser.add_argument("target", type=Path, help="folder to write the copies into")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    replicate(args.source, args.target, args.copies)
    return 0


if __name__ == "__main__":
    sys.exit(main())
