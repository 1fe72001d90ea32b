"""The benchmark's data folder: every click file (also in `clicks/`) and the catalogue, flat."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.bench import flat_data_folder


def test_the_data_folder_is_flattened_without_symbolic_links(tmp_path: Path) -> None:
    source = tmp_path / "globo"
    (source / "clicks").mkdir(parents=True)
    (source / "clicks" / "clicks_hour_000.csv").write_text("a\n")
    (source / "clicks_hour_001.csv").write_text("b\n")
    (source / "articles_metadata.csv").write_text("c\n")
    (source / "README.md").write_text("not data\n")
    assert flat_data_folder(source, tmp_path / "flat") == 3
    names = sorted(path.name for path in (tmp_path / "flat").iterdir())
    assert names == ["articles_metadata.csv", "clicks_hour_000.csv", "clicks_hour_001.csv"]
    assert not any(path.is_symlink() for path in (tmp_path / "flat").iterdir())  # the producer refuses those


def test_a_folder_without_click_files_is_named(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="BENCH_DATA_DIR"):
        flat_data_folder(tmp_path, tmp_path / "flat")
