"""How a failed micro-batch is put in words (spark_jobs.pipeline.root_cause)."""

from __future__ import annotations

from spark_jobs.pipeline import root_cause


def test_the_innermost_java_cause_is_named() -> None:
    error = RuntimeError(
        "An error occurred while calling o123.save.\n"
        ": org.apache.spark.SparkException: Job aborted.\n"
        "\tat org.apache.spark.sql.execution...\n"
        "Caused by: org.apache.spark.SparkException: Task failed while writing rows.\n"
        "Caused by: java.io.IOException: No space left on device\n"
        "\tat java.base/java.io.FileOutputStream.writeBytes(Native Method)\n"
    )
    assert root_cause(error) == "java.io.IOException: No space left on device"


def test_without_a_cause_the_first_line_is_used() -> None:
    assert root_cause(PermissionError("[Errno 13] Permission denied: '/lake'\nmore")) == (
        "[Errno 13] Permission denied: '/lake'"
    )
    assert root_cause(ValueError()) == "ValueError"
