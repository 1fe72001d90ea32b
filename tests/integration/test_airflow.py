"""The local Airflow 3: healthy, loads this repo's DAG folder, and refuses anonymous access."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.airflow_client import AirflowClient
from app.runtime.services import Airflow, Service
from app.settings import Settings

# run by Airflow's own Python with the environment `make up` gives every Airflow process: inside a
# savepoint that has only read (as `airflow backfill create` looks a run up before inserting it),
# another writer is already refused, so no commit can slip in between and fail the insert
SAVEPOINT_PROBE = """
import sqlite3
from sqlalchemy import text
from airflow import settings
with settings.Session() as session:
    with session.begin_nested():
        session.execute(text("SELECT count(*) FROM dag_run")).scalar_one()
        other = sqlite3.connect(settings.engine.url.database, timeout=0)
        try:
            other.execute("BEGIN IMMEDIATE")
            print("another writer got the lock")
        except sqlite3.OperationalError as error:
            print(f"another writer: {error}")
        finally:
            other.close()
    session.rollback()
"""


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


def test_its_processes_hold_the_write_lock_from_a_savepoint_on(airflow: Service, settings: Settings) -> None:
    env = {**os.environ, **Airflow(settings).environment()}
    probe = subprocess.run(
        [sys.executable, "-c", SAVEPOINT_PROBE], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert probe.returncode == 0, probe.stderr[-3000:]
    assert probe.stdout.strip() == "another writer: database is locked"
