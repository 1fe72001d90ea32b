"""`make up` / `make status` / `make down` through their command line, on free ports."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from app.runtime.process import port_is_free, process_group_alive
from app.runtime.services import settings_environment
from app.settings import REPO_ROOT, Settings
from tests.conftest import isolated_settings


def runtime_cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **settings_environment(settings), "AIRFLOW_ADMIN_PASSWORD": settings.airflow_admin_password}
    return subprocess.run(
        [sys.executable, "-m", "app.runtime", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def recorded_pids(state_dir: Path) -> dict[str, int]:
    return {pid_file.stem: int(pid_file.read_text().split()[0]) for pid_file in (state_dir / "run").glob("*.pid")}


def test_up_twice_status_down_leaves_nothing(tmp_path: Path) -> None:
    settings = isolated_settings(tmp_path / "state")
    try:
        first = runtime_cli(settings, "up")
        assert first.returncode == 0, first.stderr[-3000:]
        pids = recorded_pids(settings.state_dir)
        assert set(pids) == {
            "kafka",
            "metastore",
            "airflow-api-server",
            "airflow-scheduler",
            "airflow-dag-processor",
            "airflow-triggerer",
        }

        second = runtime_cli(settings, "up")
        assert second.returncode == 0, second.stderr[-3000:]
        assert recorded_pids(settings.state_dir) == pids  # nothing started twice

        status = runtime_cli(settings, "status")
        assert status.returncode == 0, status.stdout
        for name in ("kafka", "metastore", "airflow"):
            line = next(line for line in status.stdout.splitlines() if line.startswith(name))
            assert "running" in line and "healthy:" in line and "unhealthy" not in line
        assert settings.airflow_admin_password not in status.stdout + first.stdout + first.stderr
    finally:
        down = runtime_cli(settings, "down")
    assert down.returncode == 0, down.stderr[-3000:]
    assert not any(process_group_alive(pid) for pid in pids.values())
    for port in (
        settings.kafka_port,
        settings.kafka_controller_port,
        settings.hive_metastore_port,
        settings.airflow_api_port,
    ):
        assert port_is_free("127.0.0.1", port)
    status = runtime_cli(settings, "status")
    assert status.returncode == 3 and "stopped" in status.stdout


def test_port_taken_names_the_port_and_variable(tmp_path: Path) -> None:
    settings = isolated_settings(tmp_path / "state")
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", settings.hive_metastore_port))
        squatter.listen()
        result = runtime_cli(settings, "up", "metastore")
    assert result.returncode == 1
    assert f"port {settings.hive_metastore_port}" in result.stderr
    assert "HIVE_METASTORE_PORT" in result.stderr
    assert "Traceback" not in result.stderr


def test_stale_pid_file_from_a_crash_is_recovered(tmp_path: Path) -> None:
    settings = isolated_settings(tmp_path / "state")
    try:
        assert runtime_cli(settings, "up", "kafka").returncode == 0
        pid = recorded_pids(settings.state_dir)["kafka"]
        os.killpg(pid, signal.SIGKILL)  # a crash: the pid file stays behind
        status = runtime_cli(settings, "status", "kafka")
        assert status.returncode == 3 and "stopped" in status.stdout
        again = runtime_cli(settings, "up", "kafka")
        assert again.returncode == 0, again.stderr[-3000:]
        assert "stale pid file" in status.stderr + again.stderr
        assert recorded_pids(settings.state_dir)["kafka"] != pid
    finally:
        runtime_cli(settings, "down", "kafka")
