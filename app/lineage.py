"""The Airflow assets of clickstream: its topics and its Hive tables, declared once for every DAG.

Tasks name them as inlets and outlets, so the data lineage shows in the Airflow UI.
"""

from __future__ import annotations

from airflow.sdk import Asset

CLICKS_TOPIC = Asset("kafka://clickstream/clicks")
ARTICLES_TOPIC = Asset("kafka://clickstream/articles")
HOURLY_TABLES = [
    Asset(f"hive://clickstream/{table}")
    for table in ("raw_clicks", "articles", "article_hourly", "category_hourly", "context_hourly", "sessions")
]
