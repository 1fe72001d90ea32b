"""The Airflow assets of clickstream: its topics and its Hive tables, declared once for every DAG.

Tasks name them as inlets and outlets, so the data lineage shows in the Airflow UI. They are
derived from the deployment's settings (its bootstrap servers and topics, `KAFKA_TOPIC` and
`KAFKA_METADATA_TOPIC`; its metastore and `HIVE_DATABASE`) and the tables from the table catalogue
(`app/table_catalog.py`).

Two assets are partitioned by time. `LANDED_HOURS` gets one event per UTC hour that a run of
`clickstream_hourly` checked and found balanced, with the hour as its partition key
(`2017-10-01T03`): the UI's asset view lists the hours that exist and when each last changed.
`RECOMPUTED_DAYS` gets an event keyed by the day (`2017-10-01`) when an hour of a day that was
already complete is landed again. `clickstream_daily` is scheduled on both.
"""

from __future__ import annotations

from airflow.sdk import Asset

from app.settings import Settings, load_settings
from app.table_catalog import TABLES, TableKind


def topic_asset(settings: Settings, topic: str) -> Asset:
    """A topic as the Kafka provider writes it: `kafka://<first bootstrap server>/<topic>`."""
    server = settings.kafka_servers.split(",")[0].strip()
    return Asset(name=f"kafka_{topic}", uri=f"kafka://{server}/{topic}")


def table_asset(settings: Settings, table: str) -> Asset:
    """A Hive table: `hive://<metastore host:port>/<database>/<table>`."""
    return Asset(name=f"hive_{settings.hive_database}_{table}", uri=f"{hive_root(settings)}/{table}")


def hive_root(settings: Settings) -> str:
    return f"hive://{settings.hive_metastore_uri.removeprefix('thrift://')}/{settings.hive_database}"


SETTINGS = load_settings()  # the deployment's: its topics, its metastore and database

CLICKS_TOPIC = topic_asset(SETTINGS, SETTINGS.kafka_topic)
ARTICLES_TOPIC = topic_asset(SETTINGS, SETTINGS.kafka_metadata_topic)
# what a drain or a recomputation of hours changes: the raw clicks, the articles and every aggregate
HOURLY_TABLES = [
    table_asset(SETTINGS, table.name)
    for table in TABLES
    if table.name == "raw_clicks" or table.kind in (TableKind.DIMENSION, TableKind.AGGREGATE)
]
DAILY_TABLES = [table_asset(SETTINGS, table.name) for table in TABLES if table.kind is TableKind.DAILY]
RECONCILIATION = table_asset(SETTINGS, "hour_reconciliation")
ERASURES = table_asset(SETTINGS, "erasures")  # the erasure requests, and the suppression list

# partitioned by time (see above); their names are what the UI and the daily DAG's timetable show
LANDED_HOURS = Asset(name="clickstream_landed_hours", uri=f"{hive_root(SETTINGS)}/landed-hours")
RECOMPUTED_DAYS = Asset(name="clickstream_recomputed_days", uri=f"{hive_root(SETTINGS)}/recomputed-days")
