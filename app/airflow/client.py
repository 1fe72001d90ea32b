"""A small client of the Airflow REST API (v2): log in, trigger a DAG run, wait for it.

`make demo` runs the pipeline through Airflow with it, and the tests drive Airflow the way the UI
does. It speaks JSON over urllib, so it needs nothing beyond the standard library.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

log = logging.getLogger(__name__)

FINISHED_STATES = ("success", "failed")


class AirflowApiError(RuntimeError):
    """Airflow answered a request with an error status."""


@dataclass
class RunOutcome:
    state: str
    task_states: dict[str, str | None] = field(default_factory=dict)


class AirflowClient:
    def __init__(self, base_url: str, username: str | None = None, password: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.username = username
        self.password = password
        self._token: str | None = None

    def request(
        self, method: str, path: str, body: Any = None, authenticated: bool = True, timeout: float = 30
    ) -> tuple[int, Any]:
        """(HTTP status, decoded JSON reply) of one request; error statuses are returned, not raised."""
        headers = {"Content-Type": "application/json"}
        if authenticated:
            headers["Authorization"] = f"Bearer {self.token()}"
        call = urllib.request.Request(  # noqa: S310 - the Airflow URL of the settings
            f"{self.base_url}{path}",
            data=json.dumps(body).encode() if body is not None else None,
            method=method,
            headers=headers,
        )
        try:
            with urllib.request.urlopen(call, timeout=timeout) as reply:  # noqa: S310
                return reply.status, _decode(reply.read())
        except urllib.error.HTTPError as error:
            return error.code, _decode(error.read())

    def call(self, method: str, path: str, body: Any = None) -> Any:
        """The JSON reply of a request that must succeed."""
        status, reply = self.request(method, path, body)
        if status >= 300:
            raise AirflowApiError(f"{method} {path}: HTTP {status}: {reply}")
        return reply

    def login(self, password: str | None = None) -> tuple[int, Any]:
        """(status, reply) of a password login; a successful one keeps the token for later requests."""
        status, reply = self.request(
            "POST",
            "/auth/token",
            {"username": self.username, "password": self.password if password is None else password},
            authenticated=False,
        )
        if status in (200, 201) and password is None:
            self._token = str(reply["access_token"])
        return status, reply

    def token(self) -> str:
        if self._token is None:
            status, reply = self.login()
            if self._token is None:
                raise AirflowApiError(f"login as {self.username!r} refused: HTTP {status}: {reply}")
        return self._token

    def wait_for_dag(self, dag_id: str, timeout: float = 180) -> None:
        """Wait until the DAG processor has parsed the DAG."""
        deadline = time.monotonic() + timeout
        while self.request("GET", f"/api/v2/dags/{dag_id}")[0] != 200:
            if time.monotonic() > deadline:
                raise AirflowApiError(
                    f"DAG {dag_id} was not parsed within {timeout:.0f} s; see `airflow dags list-import-errors`"
                )
            time.sleep(2)

    def unpause(self, dag_id: str) -> None:
        self.call("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})

    def pause(self, dag_id: str) -> None:
        self.call("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": True})

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> str:
        """Trigger a run now, as the UI's Trigger button does; returns its run id."""
        run = self.call("POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf or {}})
        return str(run["dag_run_id"])

    def runs_queued_since(self, dag_id: str, moment: datetime) -> list[dict[str, Any]]:
        """The DAG's runs queued at or after `moment`, whatever their kind and data interval (a scheduled
        run made now covers an earlier hour), oldest first; the newest 100 are looked at."""
        runs = self.call("GET", f"/api/v2/dags/{dag_id}/dagRuns?order_by=-id&limit=100")["dag_runs"]
        queued = [run for run in runs if run.get("queued_at") and datetime.fromisoformat(run["queued_at"]) >= moment]
        return list(reversed(queued))

    def run_state(self, dag_id: str, run_id: str) -> str:
        return str(self.call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")["state"])

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        reply = self.call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
        return {task["task_id"]: task["state"] for task in reply["task_instances"]}

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 1800, poll: float = 5) -> RunOutcome:
        """Wait until the run succeeds or fails; its final state and the state of each task."""
        deadline = time.monotonic() + timeout
        reported: dict[str, str | None] = {}
        while True:
            state = self.run_state(dag_id, run_id)
            tasks = self.task_states(dag_id, run_id)
            for task_id, task_state in tasks.items():
                if task_state != reported.get(task_id) and task_state:
                    log.info("%s.%s: %s", dag_id, task_id, task_state)
            reported = tasks
            if state in FINISHED_STATES:
                return RunOutcome(state, tasks)
            if time.monotonic() > deadline:
                raise AirflowApiError(f"run {run_id} of {dag_id} still {state} after {timeout:.0f} s: {tasks}")
            time.sleep(poll)

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
        reply = self.call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}")
        return reply.get("value", reply)


def _decode(raw: bytes) -> Any:
    if not raw:
        return {}
    try:
        return json.loads(raw)
    except ValueError:
        return {"text": raw.decode(errors="replace")[:2000]}
