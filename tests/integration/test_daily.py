"""A day of clicks through the real broker, Spark and metastore: `hour_reconciliation` balances every
hour (the empty one too) and names the hour and the table when a raw file goes missing; the daily
tables equal an independent pandas computation, distinct counts included; a day whose hours do not
balance is refused, naming them."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow.parquet as pq
import pytest

from app.airflow.tasks import HoursNotBalanced, require_balanced_day
from app.hours import hours_of_day
from app.metastore import Metastore
from app.parquet_folders import parquet_files
from app.producer.publisher import PublishOptions, publish
from app.reconciliation import BALANCED, EMPTY, ReconciliationTable
from app.runtime.service import Service
from app.settings import Settings
from app.table_checks import check_day, check_tables
from tests.conftest import own_pipeline
from tests.integration.expected import daily_tables, normalise
from tests.integration.jobs import SAMPLE, clicks_of_a_day, run_job, table_rows

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

DAY = "2018-04-19"
EMPTY_HOUR = 13  # no clicks, as one hour of the Globo set


@pytest.fixture(scope="module")
def day_pipeline(
    kafka: Service, metastore: Service, settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Settings]:
    own = own_pipeline(settings, tmp_path_factory.mktemp("daily"))
    clicks_of_a_day(own.producer_data_root_directory, DAY, [h for h in range(24) if h != EMPTY_HOUR])
    shutil.copy(SAMPLE / "articles_metadata.csv", own.producer_data_root_directory)
    yield own


def daily_rows(spark: SparkSession, settings: Settings, table: str) -> set[tuple[Any, ...]]:
    rows = table_rows(spark, settings, table)
    if table == "day_summary":  # top_categories: structs as (category, clicks) pairs
        return {(*row[:5], tuple((c.category_id, c.clicks) for c in row[5]), row[6]) for row in rows}
    return normalise(rows)


def test_a_day_reconciles_hour_by_hour_and_its_tables_equal_an_independent_computation(
    day_pipeline: Settings, spark: SparkSession, tmp_path: Path
) -> None:
    settings = day_pipeline
    log = tmp_path / "jobs.log"
    publish(settings, PublishOptions())
    run_job(settings, "streaming_job.py", "--trigger", "available-now", log=log)

    report = check_tables(settings, hours_of_day(DAY))
    assert report.problems == [], report.problems
    states = {(DAY, hour): EMPTY if hour == EMPTY_HOUR else BALANCED for hour in range(24)}
    assert {hour: report.states[hour] for hour in hours_of_day(DAY)} == states  # nothing came for one hour
    rows = ReconciliationTable(settings).read([DAY])
    assert rows[(DAY, EMPTY_HOUR)]["raw_clicks"] == 0 and rows[(DAY, EMPTY_HOUR)]["published"] == 0
    assert {rows[(DAY, hour)]["published"] for hour in range(24) if hour != EMPTY_HOUR} == {50}
    found = require_balanced_day(settings, DAY)
    assert (found["day"], found["clicks"], len(found["versions"])) == (DAY, 23 * 50, 24)
    # readable by any Hive reader: Spark SQL sees the same rows
    through_spark = table_rows(spark, settings, "hour_reconciliation")
    assert sorted((row.dt, row.hour, row.state) for row in through_spark) == sorted((*h, s) for h, s in states.items())

    run_job(settings, "build_days.py", "--day", DAY, log=log)
    files = sorted(settings.producer_data_root_directory.glob("clicks_hour_*.csv"))
    expected = daily_tables(files, SAMPLE / "articles_metadata.csv")
    for table in ("article_daily", "category_daily", "day_summary"):
        assert daily_rows(spark, settings, table) == expected[table], table
    (summary,) = expected["day_summary"]
    assert summary[1] < sum(1 for _ in files) * 50 and summary[4] == 23  # users recur; 23 hours had clicks
    assert check_day(settings, DAY) == []

    # a file of one raw partition goes missing: the hour, the ledger and the table are named
    partition = Metastore(settings.hive_metastore_uri, settings.hive_database).partition_locations("raw_clicks")
    victim = parquet_files(partition[f"dt={DAY}/hour=5"])[0]
    remaining = 50 - pq.ParquetFile(victim).metadata.num_rows
    victim.unlink()
    report = check_tables(settings, [(DAY, 5)])
    assert report.states[(DAY, 5)] == (
        f"the ledger published 50 click(s) of this hour, raw_clicks holds {remaining} of its files"
    )
    assert any(f"{DAY} hour 5" in problem and "raw_clicks" in problem for problem in report.problems)
    assert ReconciliationTable(settings).read([DAY])[(DAY, 5)]["state"] == report.states[(DAY, 5)]
    with pytest.raises(HoursNotBalanced, match=f"{DAY}T05: the ledger published 50"):
        require_balanced_day(settings, DAY)
