"""The README's "Adding an aggregate" example, applied as printed to a copy of the code: the new
table is created from its transform, listed by the catalogue's readers (assets, checks,
reconciliation, summary) and built from clicks, with nothing else edited."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

from app.settings import REPO_ROOT

ANCHOR = "\n)\n\nTABLES += ("  # the end of the hourly tables in app/table_catalog.py, before the daily ones

CHECKS = """
from pyspark.sql import SparkSession

from app import summary, table_checks
from app.airflow import assets
from app.settings import load_settings
from app.spark_session import spark_environment
from app.table_catalog import BY_NAME, TableKind, tables_of_kind
from spark_jobs import transforms as T
from spark_jobs.tables import table_specs

NAME = "publisher_hourly"
assert BY_NAME[NAME] in tables_of_kind(TableKind.AGGREGATE)
assert NAME in T.TABLE_TRANSFORMS and NAME in table_checks.AGGREGATES
assert (f"{NAME}_clicks", "bigint") in BY_NAME["hour_reconciliation"].columns
assert any(asset.uri.endswith(f"/{NAME}") for asset in assets.HOURLY_TABLES)
assert NAME in summary.TABLE_NAMES

settings = load_settings()
os.environ.update(spark_environment(settings))
spark = (
    SparkSession.builder.master("local[1]").config("spark.sql.session.timeZone", "UTC")
    .config("spark.ui.enabled", "false").config("spark.driver.host", "127.0.0.1")
    .config("spark.driver.bindAddress", "127.0.0.1").getOrCreate()
)
try:
    schema = table_specs(spark, settings)[NAME].schema
    assert schema.names == ["publisher_id", "clicks", "users", "articles", "dt", "hour"], schema.names
    clicks = spark.createDataFrame(
        [("2017-10-01", 3, 1, 7, 100), ("2017-10-01", 3, 1, 7, 200), ("2017-10-01", 3, 2, 8, 100)],
        "dt string, hour int, publisher_id long, user_id long, click_article_id long",
    )
    rows = sorted(tuple(row) for row in T.TABLE_TRANSFORMS[NAME](clicks).collect())
    assert rows == [(1, 2, 1, 2, "2017-10-01", 3), (2, 1, 1, 1, "2017-10-01", 3)], rows
finally:
    spark.stop()
print("the new aggregate is part of the pipeline")
"""


def readme_example() -> tuple[str, str]:
    """The transform and the catalogue entry, as the README prints them."""
    text = (REPO_ROOT / "README.md").read_text()
    section = text[text.index("## Adding an aggregate") :].split("\n## ", 1)[0]
    blocks = [textwrap.dedent(block) for block in re.findall(r"```python\n(.*?)```", section, re.S)]
    assert len(blocks) == 2, "the README's example is a transform and a catalogue entry"
    return blocks[0], blocks[1]


def test_the_readmes_new_aggregate_is_built_checked_and_listed(tmp_path: Path) -> None:
    transform, entry = readme_example()
    copy = tmp_path / "repo"
    for package in ("app", "spark_jobs"):
        shutil.copytree(REPO_ROOT / package, copy / package, ignore=shutil.ignore_patterns("__pycache__", "data"))
    transforms = copy / "spark_jobs" / "transforms.py"
    transforms.write_text(transforms.read_text() + "\n\n" + transform)
    catalogue = copy / "app" / "table_catalog.py"
    text = catalogue.read_text()
    assert text.count(ANCHOR) == 1, "app/table_catalog.py no longer ends its hourly tables where the test expects"
    catalogue.write_text(text.replace(ANCHOR, "\n" + textwrap.indent(entry.rstrip(), "    ") + ANCHOR))

    environment = {
        **os.environ,
        "PYTHONPATH": str(copy),
        "CLICKSTREAM_STATE_DIR": str(tmp_path / "state"),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    result = subprocess.run(
        [sys.executable, "-c", "import os\n" + CHECKS],
        cwd=copy,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert "the new aggregate is part of the pipeline" in result.stdout
