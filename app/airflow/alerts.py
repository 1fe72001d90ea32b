"""Failures announced: a short JSON message to `ALERT_WEBHOOK_URL` for every failed task of the DAGs.

`WebhookNotifier` is an Airflow notifier, set as `on_failure_callback` of every task of both DAGs:
Airflow calls it once a task has failed for good (after its retries), so `refused_files` and
`check_tables` (never retried) announce their failure at once and a task that heals on a retry
announces nothing. The message: DAG, run, task, try, reason (the exception's first lines) and a
link to the run in the UI. With the setting empty, nothing is sent.

The URL is a secret (a webhook's path is its password): it is read from the environment when a
message is sent, never stored in the DAG, and logs show only its scheme and host.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import quote, urlsplit

from airflow.sdk import BaseNotifier

log = logging.getLogger(__name__)

REASON_CHARACTERS = 2_000  # of the exception's text in a message
TIMEOUT_SECONDS = 10


def shown_url(url: str) -> str:
    """What may be logged of a webhook URL: its scheme and host, not its secret path or query."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or '?'}{f':{parts.port}' if parts.port else ''}/..."


def failure_message(context: Any, ui_url: str) -> dict[str, Any]:
    """The JSON body for a failed task, from Airflow's callback context."""
    ti = context["ti"]
    run_id = str(context["run_id"])
    dag_id = str(ti.dag_id)
    error = context.get("exception")
    reason = (str(error).strip() or type(error).__name__) if error is not None else "failed"
    return {
        "event": "task_failed",
        "dag_id": dag_id,
        "run_id": run_id,
        "task_id": str(ti.task_id),
        "try_number": int(getattr(ti, "try_number", 0) or 0),
        "reason": reason[:REASON_CHARACTERS],
        "url": f"{ui_url}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}",
    }


def post_json(url: str, body: dict[str, Any]) -> None:
    """POST `body` as JSON; a failure is logged (without the URL's secret part), never raised: an
    alert that cannot be sent must not change the task's outcome."""
    request = urllib.request.Request(  # noqa: S310 - the user's own webhook URL
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310
            log.info("alert sent to %s (HTTP %s)", shown_url(url), response.status)
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = getattr(error, "reason", None) or getattr(error, "code", None) or type(error).__name__
        log.warning("alert not sent to %s: %s", shown_url(url), reason)


class WebhookNotifier(BaseNotifier):
    """Posts `failure_message` to `ALERT_WEBHOOK_URL` (nothing when it is empty)."""

    def notify(self, context: Any) -> None:
        from app.settings import load_settings

        settings = load_settings()
        if not settings.alert_webhook_url:
            return
        post_json(settings.alert_webhook_url, failure_message(context, settings.airflow_url))
