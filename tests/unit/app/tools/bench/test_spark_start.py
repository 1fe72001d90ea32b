"""The start-up probe's report: both ways side by side, what a task saves, the server's own start."""

from __future__ import annotations

from app.tools.bench.spark_start import report


def test_the_report_sets_the_two_ways_side_by_side_and_names_the_saving() -> None:
    text = "\n".join(report({"spark-submit": [12.0, 11.0, 13.0], "Spark Connect": [3.0, 2.5, 2.0], "server": [14.2]}))
    assert "| `spark-submit`: its own driver | 12.0 | 12.0, 11.0, 13.0 |" in text
    assert "| a client of a running Spark Connect server | 2.5 | 3.0, 2.5, 2.0 |" in text
    assert "Saved per Spark task: 9.5 s. The server's own start (paid once): 14.2 s." in text
