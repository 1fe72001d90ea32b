"""The local Airflow 3: healthy, refuses anonymous access, and creates backfills while others write."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
from contextlib import closing
from pathlib import Path

import pytest

from app.airflow_client import AirflowClient
from app.runtime.services import Airflow, Service
from app.settings import Settings
from tests.conftest import isolated_settings


def anonymous(settings: Settings) -> AirflowClient:
    return AirflowClient(settings.airflow_url)


@pytest.mark.parametrize("path", ["/api/v2/dags", "/api/v2/config", "/api/v2/connections", "/ui/dags", "/ui/config"])
def test_ui_and_api_refuse_anonymous_requests(airflow: Service, settings: Settings, path: str) -> None:
    status, _ = anonymous(settings).request("GET", path, authenticated=False)
    assert status == 401


def test_login_with_the_configured_password_only(airflow_client: AirflowClient) -> None:
    assert airflow_client.login("not-the-password")[0] == 401
    status, reply = airflow_client.request("GET", "/api/v2/dags")
    assert status == 200
    assert "dags" in reply


def test_listens_on_loopback_only(airflow: Service, settings: Settings) -> None:
    listening = Path("/proc/net/tcp").read_text().splitlines()[1:]
    port_hex = f"{settings.airflow_api_port:04X}"
    local_addresses = {line.split()[1] for line in listening if line.split()[3] == "0A"}
    assert f"0100007F:{port_hex}" in local_addresses
    assert f"00000000:{port_hex}" not in local_addresses


def test_a_backfill_is_created_while_another_process_commits_all_the_time(tmp_path: Path) -> None:
    """The CI failure of `airflow backfill create` ("database is locked" when the scheduler committed
    between a run's look-up and its insert), made certain: a writer commits every 2 ms throughout.
    A private Airflow home, migrated but not started, so that no scheduler runs the backfill."""
    airflow = Airflow(isolated_settings(tmp_path / "state"))
    airflow.prepare()  # migrates, as `make up` does
    env = {**os.environ, **airflow.environment()}
    cli = str(Path(sys.executable).parent / "airflow")
    serialized = subprocess.run([cli, "dags", "reserialize"], env=env, capture_output=True, text=True, check=False)
    assert serialized.returncode == 0, serialized.stderr[-3000:]

    stop = threading.Event()
    commits = []

    def commit_all_the_time() -> None:
        with closing(sqlite3.connect(airflow.home / "airflow.db", timeout=60)) as connection:
            connection.execute("CREATE TABLE IF NOT EXISTS test_writer (n INTEGER)")
            while not stop.wait(0.002):
                connection.execute("INSERT INTO test_writer VALUES (1)")
                connection.commit()
                commits.append(1)

    writer = threading.Thread(target=commit_all_the_time)
    writer.start()
    try:
        created = subprocess.run(
            [cli, "backfill", "create", "--dag-id", "clickstream_hourly", "--from-date", "2017-10-01T00:00:00",
             "--to-date", "2017-10-01T23:00:00", "--reprocess-behavior", "completed"],
            env=env, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
    finally:
        stop.set()
        writer.join()
    assert created.returncode == 0, created.stderr[-3000:]
    assert len(commits) > 100  # the writer did commit throughout
    with closing(sqlite3.connect(airflow.home / "airflow.db")) as connection:
        runs = connection.execute("SELECT count(*) FROM dag_run WHERE run_type = 'backfill'").fetchone()[0]
    assert runs == 24
