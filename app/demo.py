"""The main job on the embedded default: `make demo`.

Starts the local services (Kafka, the Hive Metastore, Airflow), publishes the example data in
`PRODUCER_DATA_ROOT_DIRECTORY` (default `app/data/`) exactly once, drains both topics with the
streaming job (available-now) into the raw Parquet tables and the hourly Hive aggregates, and
prints a summary: rows per topic, rejects, every table's row count, the busiest hour's top
articles and categories, and the URLs with the login. It leaves the services running for you to
explore; `make down` stops them. Running it again publishes and counts nothing twice.
"""

from __future__ import annotations

import logging
import sys

from rich.console import Console

from app.kafka_io import KafkaSetupError
from app.producer.__main__ import summary_table
from app.producer.ledger import read_ledger
from app.producer.publisher import PublishError, publish
from app.runtime.__main__ import airflow_login_hint, format_status
from app.runtime.process import RuntimeErrorWithHint
from app.runtime.services import LocalRuntime
from app.settings import SettingsError, load_settings
from app.spark_jobs_runner import SparkJobError, run_spark_job
from app.spark_session import build_spark_session
from app.summary import summarise_tables

log = logging.getLogger(__name__)


def main() -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    console = Console(width=160)
    try:
        settings = load_settings()
        runtime = LocalRuntime(settings)
        console.print("[bold]1/4[/bold] starting Kafka, the Hive Metastore and Airflow on", settings.bind_host)
        runtime.up()
        console.print(f"[bold]2/4[/bold] publishing {settings.producer_data_root_directory}")
        result = publish(settings)
        ledger = read_ledger(settings)
        spark_log = settings.logs_dir / "spark-streaming-job.log"
        console.print(f"[bold]3/4[/bold] draining the topics into Parquet and Hive with Spark (log: {spark_log})")
        run_spark_job(settings, "streaming_job.py", ["--trigger", "available-now"], spark_log)
        console.print("[bold]4/4[/bold] reading the Hive tables through the metastore")
        spark = build_spark_session(settings, "clickstream-demo-summary")
        spark.sparkContext.setLogLevel("ERROR")
        try:
            tables = summarise_tables(spark, settings)
        finally:
            spark.stop()
    except (RuntimeErrorWithHint, SettingsError, KafkaSetupError, PublishError, SparkJobError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    console.print(summary_table(result))
    by_topic: dict[str, tuple[int, int]] = {}
    for entry in ledger.values():
        rows, rejected = by_topic.get(entry.topic, (0, 0))
        by_topic[entry.topic] = (rows + entry.rows, rejected + entry.rejected)
    console.print("\n[bold]rows in the topics[/bold] (all runs, from the ledger)")
    for topic, (rows, rejected) in sorted(by_topic.items()):
        console.print(f"  {topic}: {rows:,} rows, {rejected:,} rejected (in {settings.kafka_rejects_topic})")
    console.print(f"\n[bold]Hive tables[/bold] (database {settings.hive_database})")
    for table, count in tables.row_counts.items():
        console.print(f"  {table}: {count:,} rows")
    if tables.busiest_hour:
        dt, hour = tables.busiest_hour
        console.print(f"\n[bold]busiest hour[/bold]: {dt} {hour:02d}:00 UTC, {tables.busiest_hour_clicks:,} clicks")
        console.print(
            "  top articles (article, category, clicks): "
            + "; ".join(f"{a}, {c}, {n}" for a, c, n in tables.top_articles)
        )
        console.print(
            "  top categories (category, clicks, users): "
            + "; ".join(f"{c}, {n}, {u}" for c, n, u in tables.top_categories)
        )
    console.print("\n[bold]services[/bold]")
    console.print(format_status(runtime.status()))
    console.print(airflow_login_hint(settings))
    console.print(f"Spark UI: http://{settings.bind_host}:{settings.spark_ui_port} (while a Spark job runs)")
    console.print("Stop everything with: make down")
    return 2 if result.refused else 0


if __name__ == "__main__":
    sys.exit(main())
