"""The table catalogue is the one list of tables: every table transform has an entry and every entry
names a table transform; the modules that list tables take them from it."""

from __future__ import annotations

from pathlib import Path

from app import summary, table_checks
from app.airflow import assets
from app.table_catalog import BY_NAME, TABLE_NAMES, TABLES, Source, TableKind
from spark_jobs import transforms


def test_every_table_transform_has_a_catalogue_entry_and_the_reverse() -> None:
    built = [table for table in TABLES if table.transform is not None]
    assert set(transforms.TABLE_TRANSFORMS) == {table.transform for table in built}
    assert len({table.transform for table in built}) == len(built)
    # a table no transform builds declares its columns, and only such a table does
    assert all(bool(table.columns) == (table.transform is None) for table in TABLES)


def test_the_listing_modules_derive_their_tables_from_the_catalogue() -> None:
    assert "from app.table_catalog import TABLE_NAMES" in Path(summary.__file__).read_text()
    assert set(table_checks.AGGREGATES) == {t.name for t in TABLES if t.adds_up_to_raw_clicks}
    assert set(table_checks.RAW_TABLE_OF_KIND.values()) == {t.name for t in TABLES if t.ledger_kind}
    assert {asset.uri.rsplit("/", 1)[-1] for asset in assets.HOURLY_TABLES} == {
        t.name for t in TABLES if t.kind in (TableKind.DIMENSION, TableKind.AGGREGATE) or t.name == "raw_clicks"
    }
    assert {asset.uri.rsplit("/", 1)[-1] for asset in assets.DAILY_TABLES} == {
        t.name for t in TABLES if t.kind is TableKind.DAILY
    }


def test_every_aggregate_is_hourly_and_recomputed_from_clicks() -> None:
    for table in TABLES:
        if table.kind is TableKind.AGGREGATE:
            assert table.hourly, table.name
            assert table.source in (Source.ENRICHED_CLICKS, Source.SESSION_CLICKS), table.name
    assert BY_NAME["raw_clicks"].ledger_kind == "clicks" and BY_NAME["raw_articles"].ledger_kind == "articles"


def test_the_readme_lists_every_table_of_the_catalogue() -> None:
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    table = readme[readme.index("| table (database `HIVE_DATABASE`) |") :].split("\n\n", 1)[0]
    listed = [line.split("`")[1] for line in table.splitlines()[2:]]
    assert listed == list(TABLE_NAMES)
