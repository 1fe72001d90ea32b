"""The main job on the embedded default: `make demo`.

Starts the local services (Kafka, the Hive Metastore, Airflow), publishes the example data in
`PRODUCER_DATA_ROOT_DIRECTORY` (default `app/data/`) exactly once, and prints a summary with the
URLs and the login. It leaves the services running for you to explore; `make down` stops them.
Running it again publishes nothing twice.
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

log = logging.getLogger(__name__)


def main() -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    console = Console(width=160)
    try:
        settings = load_settings()
        runtime = LocalRuntime(settings)
        console.print("[bold]1/2[/bold] starting Kafka, the Hive Metastore and Airflow on", settings.bind_host)
        runtime.up()
        console.print(f"[bold]2/2[/bold] publishing {settings.producer_data_root_directory}")
        result = publish(settings)
        ledger = read_ledger(settings)
    except (RuntimeErrorWithHint, SettingsError, KafkaSetupError, PublishError) as error:
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
    console.print("\n[bold]services[/bold]")
    console.print(format_status(runtime.status()))
    console.print(airflow_login_hint(settings))
    console.print("Stop everything with: make down")
    return 2 if result.refused else 0


if __name__ == "__main__":
    sys.exit(main())
