"""The original project's way of publishing, kept only as `make bench`'s point of comparison.

One JSON message per CSV row, sent with a per-row `send()` of kafka-python's `KafkaProducer` at its
default settings (no batching or compression tuning, no transactions, no idempotence), each file
read whole with pandas and walked with `iterrows()`; one `flush()` at the end. Not for use: it
gives none of the guarantees of `app.producer` (a crash mid-file duplicates rows on the next run).

Usage: python -m app.tools.bench.original_producer SERVERS CLICK_TOPIC ARTICLE_TOPIC FILE [FILE ...]
Prints the number of rows sent.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    import pandas as pd
    from kafka import KafkaProducer

    servers, click_topic, article_topic, *files = argv if argv is not None else sys.argv[1:]
    producer = KafkaProducer(
        bootstrap_servers=servers.split(","), value_serializer=lambda value: json.dumps(value).encode("utf-8")
    )
    sent = 0
    for file in files:
        topic = article_topic if Path(file).name.startswith("articles") else click_topic
        for _, row in pd.read_csv(file).iterrows():
            producer.send(topic, value=row.to_dict())
            sent += 1
    producer.flush()
    producer.close()
    print(sent)
    return 0


if __name__ == "__main__":
    sys.exit(main())
