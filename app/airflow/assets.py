"""The Airflow assets of clickstream: its topics and its Hive tables, declared once for every DAG.

Tasks name them as inlets and outlets, so the data lineage shows in the Airflow UI. The tables come
from the table catalogue (`app/table_catalog.py`).

Two assets are partitioned by time. `LANDED_HOURS` gets one event per UTC hour that a run of
`clickstream_hourly` checked and found balanced, with the hour as its partition key
(`2017-10-01T03`): the UI's asset view lists the hours that exist and when each last changed.
`RECOMPUTED_DAYS` gets an event keyed by the day (`2017-10-01`) when an hour of a day that was
already complete is landed again. `clickstream_daily` is scheduled on both.
"""

from __future__ import annotations

from airflow.sdk import Asset

from app.table_catalog import TABLES, TableKind

CLICKS_TOPIC = Asset("kafka://clickstream/clicks")
ARTICLES_TOPIC = Asset("kafka://clickstream/articles")
# what a drain or a recomputation of hours changes: the raw clicks, the articles and every aggregate
HOURLY_TABLES = [
    Asset(f"hive://clickstream/{table.name}")
    for table in TABLES
    if table.name == "raw_clicks" or table.kind in (TableKind.DIMENSION, TableKind.AGGREGATE)
]

LANDED_HOURS = Asset(name="clickstream_landed_hours", uri="hive://clickstream/landed-hours")
RECOMPUTED_DAYS = Asset(name="clickstream_recomputed_days", uri="hive://clickstream/recomputed-days")
DAILY_TABLES = [Asset(f"hive://clickstream/{table.name}") for table in TABLES if table.kind is TableKind.DAILY]
RECONCILIATION = Asset("hive://clickstream/hour_reconciliation")
