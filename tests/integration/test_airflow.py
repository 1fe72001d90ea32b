"""The local Airflow 3: healthy, loads this repo's DAG folder, and refuses anonymous access."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.airflow_client import AirflowClient
from app.runtime.services import Service
from app.settings import Settings


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
