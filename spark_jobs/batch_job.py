"""What the batch jobs (`recompute_hours.py`, `build_days.py`) share: reading their arguments and
running one piece of pipeline work in a Spark application of their own.

A job parses its arguments, then `run_batch_job` starts Spark with the settings, makes sure the
catalogue's tables exist, runs the work, deletes the folders partitions stopped pointing at past
their grace period, logs what the work did and stops Spark, also when the work failed.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from typing import TypeVar

from app.settings import load_settings
from app.spark_session import configure_job_logging, spark_application
from spark_jobs.pipeline import Pipeline
from spark_jobs.tables import TableStore

T = TypeVar("T")


def argument(parse: Callable[[str], T]) -> Callable[[str], T]:
    """An argparse `type` that reports `parse`'s own ValueError message (argparse's says only "invalid value")."""

    def parsed(text: str) -> T:
        try:
            return parse(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    parsed.__name__ = parse.__name__
    return parsed


def run_batch_job(name: str, work: Callable[[Pipeline], str]) -> int:
    """Run `work` on the pipeline in a Spark application called `clickstream-<name>`; `work` returns
    a sentence saying what it did."""
    configure_job_logging()
    settings = load_settings()
    with spark_application(settings, f"clickstream-{name}") as spark:
        store = TableStore(spark, settings)
        store.ensure_tables()
        done = work(Pipeline(store, settings))
        store.remove_retired()
        logging.getLogger(f"spark_jobs.{name.replace('-', '_')}").info("%s", done)
    return 0
