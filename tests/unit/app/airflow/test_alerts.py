"""The failure notifier's message, what it logs of the webhook URL, and the setting's checks."""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace

import pytest

from app.airflow.alerts import failure_message, post_json, shown_url
from app.settings import SettingsError
from tests.conftest import free_ports, isolated_settings

SECRET_URL = "https://hooks.example.com:8443/services/T0/B0/very-secret-token?x=1"


def test_the_message_names_dag_run_task_reason_and_links_to_the_run() -> None:
    ti = SimpleNamespace(dag_id="clickstream_hourly", task_id="check_tables", try_number=1)
    context = {"ti": ti, "run_id": "manual__2026-11-30T20:00:00+00:00", "exception": RuntimeError("2 disagreement(s)")}
    message = failure_message(context, "http://127.0.0.1:8080")
    assert message == {
        "event": "task_failed",
        "dag_id": "clickstream_hourly",
        "run_id": "manual__2026-11-30T20:00:00+00:00",
        "task_id": "check_tables",
        "try_number": 1,
        "reason": "2 disagreement(s)",
        "url": "http://127.0.0.1:8080/dags/clickstream_hourly/runs/manual__2026-11-30T20%3A00%3A00%2B00%3A00",
    }


def test_logs_show_the_webhook_host_only_and_a_failed_post_does_not_raise(caplog: pytest.LogCaptureFixture) -> None:
    assert shown_url(SECRET_URL) == "https://hooks.example.com:8443/..."
    [port] = free_ports(1)  # nothing listens there
    with caplog.at_level(logging.INFO, logger="app.airflow.alerts"):
        post_json(f"http://127.0.0.1:{port}/hooks/very-secret-token", {"event": "task_failed"})
    assert "alert not sent to http://127.0.0.1" in caplog.text and "very-secret-token" not in caplog.text


def test_a_bad_webhook_url_is_refused_without_repeating_it(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as refused:
        isolated_settings(tmp_path, {"ALERT_WEBHOOK_URL": "ftp://hooks.example.com/very-secret-token"})
    assert "ALERT_WEBHOOK_URL" in str(refused.value) and "very-secret-token" not in str(refused.value)
    assert isolated_settings(tmp_path, {"ALERT_WEBHOOK_URL": SECRET_URL}).alert_webhook_url == SECRET_URL
