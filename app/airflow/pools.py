"""The Airflow pools the DAGs run their tasks in, created by `make up` (and the compose file's
init container) before any DAG runs.

One Spark job at a time (one streaming checkpoint, a laptop's cores), and one publishing task at
a time (runs of the hourly DAG, its backfills and UI triggers may overlap).
"""

from __future__ import annotations

SPARK_POOL = "clickstream_spark"
PUBLISH_POOL = "clickstream_publish"

POOLS: dict[str, dict[str, int | str]] = {
    SPARK_POOL: {"slots": 1, "description": "Spark jobs of clickstream, one at a time"},
    PUBLISH_POOL: {"slots": 1, "description": "clickstream publishing tasks, one at a time"},
}
