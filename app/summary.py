"""What is in the Hive tables, in a few numbers: row counts, the busiest hour, its top articles and
categories. The demo prints it; it reads through the shared metastore like any other reader."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from app.hours import Hour
from app.settings import Settings
from app.table_catalog import TABLE_NAMES

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


@dataclass
class TablesSummary:
    row_counts: dict[str, int] = field(default_factory=dict)
    busiest_hour: Hour | None = None
    busiest_hour_clicks: int = 0
    top_articles: list[tuple[int, int, int]] = field(default_factory=list)  # article, category, clicks
    top_categories: list[tuple[int, int, int]] = field(default_factory=list)  # category, clicks, users


def summarise_tables(spark: SparkSession, settings: Settings, top: int = 5) -> TablesSummary:
    from pyspark.sql import functions as F

    database = f"`{settings.hive_database}`"
    summary = TablesSummary()
    for table in TABLE_NAMES:
        spark.sql(f"REFRESH TABLE {database}.`{table}`")
        summary.row_counts[table] = spark.table(f"{database}.`{table}`").count()
    hourly = spark.table(f"{database}.category_hourly")
    busiest = (
        hourly.groupBy("dt", "hour")
        .agg(F.sum("clicks").alias("clicks"))
        .orderBy(F.desc("clicks"), "dt", "hour")
        .first()
    )
    if busiest is None:
        return summary
    dt, hour = busiest["dt"], int(busiest["hour"])
    summary.busiest_hour, summary.busiest_hour_clicks = (dt, hour), int(busiest["clicks"])
    in_busiest_hour = (F.col("dt") == dt) & (F.col("hour") == hour)
    articles = spark.table(f"{database}.article_hourly").where(in_busiest_hour)
    summary.top_articles = [
        (int(r.article_id), int(r.category_id), int(r.clicks))
        for r in articles.orderBy(F.desc("clicks"), "article_id").limit(top).collect()
    ]
    summary.top_categories = [
        (int(r.category_id), int(r.clicks), int(r.users))
        for r in hourly.where(in_busiest_hour).orderBy(F.desc("clicks"), "category_id").limit(top).collect()
    ]
    return summary
