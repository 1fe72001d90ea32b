"""The demo's reading of the runs it caused (`app/tools/demo.py`): a run left only waiting for
files is reported, not waited for."""

from __future__ import annotations

from app.tools.demo import only_waiting_for_files


def test_a_run_at_its_sensor_with_nothing_published_is_only_waiting_for_files() -> None:
    assert only_waiting_for_files({"wait_for_new_files": "up_for_reschedule", "publish_articles": None})
    assert only_waiting_for_files({"wait_for_new_files": "running", "publish_clicks": "scheduled"})


def test_a_run_past_its_sensor_or_publishing_is_waited_for() -> None:
    assert not only_waiting_for_files({"wait_for_new_files": "success", "publish_articles": "running"})
    assert not only_waiting_for_files({"wait_for_new_files": "skipped"})
    assert not only_waiting_for_files({"wait_for_new_files": "running", "publish_articles": "success"})
