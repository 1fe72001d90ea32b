"""The Airflow assets of clickstream: its topics and its Hive tables, declared once for every DAG.

Tasks name them as inlets and outlets, so the data lineage shows in the Airflow UI. The tables come
from the table catalogue (`app/table_catalog.py`).
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
