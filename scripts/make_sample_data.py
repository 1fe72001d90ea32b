"""Cut the example data in app/data/ from the Globo.com sample in ../shared/data/globo/.

Usage: python scripts/make_sample_data.py [SOURCE_DIR] [HOURS]

Copies the first HOURS (default 3) hourly click files unchanged and writes
articles_metadata.csv with exactly the catalogue rows those clicks reference,
so that every click in the example joins to an article.
"""

from __future__ import annotations

import csv
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def make_sample(source: Path, destination: Path, hours: int) -> tuple[int, int]:
    """Copy `hours` click files and their articles; return (clicks, articles)."""
    destination.mkdir(parents=True, exist_ok=True)
    clicked: set[int] = set()
    clicks = 0
    for hour in range(hours):
        name = f"clicks_hour_{hour:03d}.csv"
        shutil.copyfile(source / "clicks" / name, destination / name)
        with open(source / "clicks" / name, newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                clicked.add(int(row["click_article_id"]))
                clicks += 1
    with (
        open(source / "articles_metadata.csv", newline="", encoding="utf-8") as src,
        open(destination / "articles_metadata.csv", "w", newline="", encoding="utf-8") as dst,
    ):
        reader = csv.reader(src)
        writer = csv.writer(dst, lineterminator="\n")
        writer.writerow(next(reader))
        kept = 0
        for article in reader:
            if int(article[0]) in clicked:
                writer.writerow(article)
                kept += 1
    return clicks, kept


if __name__ == "__main__":
    source_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO.parent / "shared" / "data" / "globo"
    hour_count = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    click_count, article_count = make_sample(source_dir, REPO / "app" / "data", hour_count)
    print(f"{click_count} clicks, {article_count} articles written to app/data/")
