"""`make bench`, item 1: what the Python Kafka client alone can send, the floor under any producer
written in Python. Our real messages (keys and values sampled from our topics, the four headers our
producer sets) go to a fresh topic in one transaction with our producer's properties, from a bare
loop of `produce()` calls: no file, no parsing, no callback. Timed inside the process, as
`ProducerPerformance` times itself.

Usage: python -m app.tools.bench.client_floor TOPIC SAMPLE_FILE RECORDS, with the settings in the
environment (SAMPLE_FILE: lines `key<TAB>value`). Prints the records sent and the seconds they took.
"""

from __future__ import annotations

import sys
import time
import uuid
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    from confluent_kafka import Producer

    from app.producer.publisher import producer_config
    from app.schemas import HEADER_FILE_VERSION, HEADER_SCHEMA_VERSION, HEADER_SOURCE_FILE, HEADER_SOURCE_LINE
    from app.settings import load_settings

    topic, sample_file, records = (argv or sys.argv[1:])[:3]
    pairs = [line.split(b"\t", 1) for line in Path(sample_file).read_bytes().splitlines()]
    config = producer_config(load_settings())
    config["transactional.id"] = f"bench-floor-{uuid.uuid4().hex[:8]}"
    producer = Producer(config)
    producer.init_transactions(60)
    base = [(HEADER_SOURCE_FILE, b"clicks_hour_000.csv"), (HEADER_SCHEMA_VERSION, b"1"), (HEADER_FILE_VERSION, b"1")]
    total, count = int(records), len(pairs)
    started = time.perf_counter()
    producer.begin_transaction()
    produce, poll = producer.produce, producer.poll
    for number in range(total):
        key, value = pairs[number % count]
        while True:
            try:
                produce(topic, value, key, headers=[*base, (HEADER_SOURCE_LINE, b"%d" % (number + 2))])
                break
            except BufferError:
                poll(0.05)
        if number % 2000 == 0:
            poll(0)
    producer.commit_transaction(120)
    print(total, time.perf_counter() - started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
