"""The local Airflow 3: healthy, loads this repo's DAG folder, and refuses anonymous access."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from app.runtime.services import Service
from app.settings import Settings


def request(url: str, token: str | None = None, body: dict[str, str] | None = None) -> tuple[int, bytes]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data, headers=headers), timeout=10) as reply:  # noqa: S310
            return reply.status, reply.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def login(settings: Settings, password: str) -> tuple[int, bytes]:
    return request(
        f"{settings.airflow_url}/auth/token",
        body={"username": settings.airflow_admin_user, "password": password},
    )


@pytest.mark.parametrize("path", ["/api/v2/dags", "/api/v2/config", "/api/v2/connections", "/ui/dags", "/ui/config"])
def test_ui_and_api_refuse_anonymous_requests(airflow: Service, settings: Settings, path: str) -> None:
    status, _ = request(f"{settings.airflow_url}{path}")
    assert status == 401


def test_login_with_the_configured_password_only(airflow: Service, settings: Settings) -> None:
    assert login(settings, "not-the-password")[0] == 401
    status, body = login(settings, settings.airflow_admin_password)
    assert status in (200, 201)
    token = json.loads(body)["access_token"]
    status, body = request(f"{settings.airflow_url}/api/v2/dags", token=token)
    assert status == 200
    assert "dags" in json.loads(body)


def test_listens_on_loopback_only(airflow: Service, settings: Settings) -> None:
    listening = Path("/proc/net/tcp").read_text().splitlines()[1:]
    port_hex = f"{settings.airflow_api_port:04X}"
    local_addresses = {line.split()[1] for line in listening if line.split()[3] == "0A"}
    assert f"0100007F:{port_hex}" in local_addresses
    assert f"00000000:{port_hex}" not in local_addresses
