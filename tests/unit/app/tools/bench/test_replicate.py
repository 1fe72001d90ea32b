"""The scale series' data: copies of the data set that are distinct and multiply its totals exactly."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from app.settings import REPO_ROOT
from app.tools.bench.replicate import WEEK_MS, replicate

SAMPLE = REPO_ROOT / "app" / "data"


def read_clicks(folder: Path) -> pd.DataFrame:
    return pd.concat([pd.read_csv(path) for path in sorted(folder.glob("clicks_hour_*.csv"))], ignore_index=True)


def test_three_copies_are_distinct_keep_their_shape_and_multiply_the_totals_exactly(tmp_path: Path) -> None:
    original = read_clicks(SAMPLE)
    layout = replicate(SAMPLE, tmp_path / "three", 3)
    copies = read_clicks(tmp_path / "three")

    originals = sorted(SAMPLE.glob("clicks_hour_*.csv"))
    assert len(list((tmp_path / "three").glob("clicks_hour_*.csv"))) == 3 * len(originals)
    catalogue = (tmp_path / "three" / "articles_metadata.csv").read_bytes()
    assert catalogue == (SAMPLE / "articles_metadata.csv").read_bytes()
    assert len(copies) == 3 * len(original)
    assert len(copies.drop_duplicates()) == 3 * len(original.drop_duplicates())
    assert layout.shift_ms % WEEK_MS == 0 and layout.user_stride > original["user_id"].max()

    copy_of = (copies["user_id"] // layout.user_stride).rename("copy")
    assert sorted(copy_of.unique()) == [0, 1, 2]
    for number in (0, 1, 2):
        part = copies[copy_of == number].reset_index(drop=True)
        users, sessions = set(part["user_id"]), set(part["session_id"])
        for other in {0, 1, 2} - {number}:  # no user and no session in two copies
            assert not users & set(copies[copy_of == other]["user_id"])
            assert not sessions & set(copies[copy_of == other]["session_id"])
        # the same clicks, moved by whole weeks: sessions, lengths, hours of the day, days of the week
        back = part.copy()
        back["user_id"] -= number * layout.user_stride
        back["session_id"] -= number * layout.shift_ms * 1000
        back["session_start"] -= number * layout.shift_ms
        back["click_timestamp"] -= number * layout.shift_ms
        key = list(original.columns)
        assert back.sort_values(key).reset_index(drop=True).equals(original.sort_values(key).reset_index(drop=True))
        moments = pd.to_datetime(part["click_timestamp"], unit="ms", utc=True)
        first = pd.to_datetime(original["click_timestamp"], unit="ms", utc=True)
        assert sorted(zip(moments.dt.dayofweek, moments.dt.hour, strict=True)) == sorted(
            zip(first.dt.dayofweek, first.dt.hour, strict=True)
        )

    # the same input gives the same bytes
    replicate(SAMPLE, tmp_path / "again", 3)
    for path in sorted((tmp_path / "three").glob("clicks_hour_*.csv")):
        assert (tmp_path / "again" / path.name).read_bytes() == path.read_bytes(), path.name
