"""Which files are published, in which order; what is ignored or refused."""

from __future__ import annotations

from pathlib import Path

from app.producer.discovery import FileKind, discover, natural_key
from app.settings import load_settings


def make(root: Path, *names: str) -> None:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x\n")


def test_natural_order_metadata_first_and_ignored_files(tmp_path: Path) -> None:
    make(
        tmp_path,
        "clicks_hour_10.csv",
        "clicks_hour_2.csv",
        "clicks_hour_002.csv.gz",
        "articles_metadata.csv",
        "notes.txt",
        "clicks_hour_3.json",
        "README.md",
    )
    settings = load_settings(environ={}, env_file=None)
    found = discover(settings, tmp_path)
    assert [f.name for f in found.files] == [
        "articles_metadata.csv",
        "clicks_hour_2.csv",
        "clicks_hour_002.csv.gz",
        "clicks_hour_10.csv",
    ]
    assert found.files[0].kind is FileKind.ARTICLES and found.files[0].topic == settings.kafka_metadata_topic
    assert all(f.kind is FileKind.CLICKS and f.topic == settings.kafka_topic for f in found.files[1:])
    assert found.files[2].compressed
    assert sorted(found.ignored) == ["README.md", "clicks_hour_3.json", "notes.txt"]
    assert found.refused == {}


def test_prefixes_and_suffix_come_from_settings(tmp_path: Path) -> None:
    make(tmp_path, "c_1.tsv", "a_1.tsv", "clicks_hour_1.csv")
    settings = load_settings(
        environ={
            "PRODUCER_CLICK_CSV_DATA_PREFIX": "c_",
            "PRODUCER_CLICK_METADATA_CSV_DATA_PREFIX": "a_",
            "CSV_SUFFIX": ".tsv",
        },
        env_file=None,
    )
    found = discover(settings, tmp_path)
    assert [f.name for f in found.files] == ["a_1.tsv", "c_1.tsv"]
    assert found.ignored == ["clicks_hour_1.csv"]


def test_link_outside_the_data_folder_is_refused(tmp_path: Path) -> None:
    root, outside = tmp_path / "data", tmp_path / "elsewhere"
    make(outside, "clicks_hour_9.csv")
    make(root, "clicks_hour_1.csv")
    (root / "clicks_hour_9.csv").symlink_to(outside / "clicks_hour_9.csv")
    (root / "clicks_hour_5.csv").symlink_to(root / "clicks_hour_1.csv")  # inside: fine
    found = discover(load_settings(environ={}, env_file=None), root)
    assert [f.name for f in found.files] == ["clicks_hour_1.csv", "clicks_hour_5.csv"]
    assert list(found.refused) == ["clicks_hour_9.csv"]
    assert "outside the data folder" in found.refused["clicks_hour_9.csv"]


def test_natural_key() -> None:
    assert sorted(["h10", "h9", "h100", "h1"], key=natural_key) == ["h1", "h9", "h10", "h100"]
