"""`make up` / `make status` / `make down` through their command line, on free ports."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from app.runtime import deps
from app.runtime.postgres import PostgresServer
from app.runtime.process import port_is_free, process_group_alive
from app.settings import REPO_ROOT, Settings
from tests.conftest import isolated_settings, reachable_folder, run_module


def runtime_cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return run_module(settings, "app.runtime", *args)


def recorded_pids(state_dir: Path) -> dict[str, int]:
    return {pid_file.stem: int(pid_file.read_text().split()[0]) for pid_file in (state_dir / "run").glob("*.pid")}


def sql_shell(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return run_module(settings, "app.tools.sql_shell", *args)


def listening_addresses() -> set[tuple[str, int]]:
    """(address, port) of every listening TCP socket, IPv4 and IPv6 (Java listens on IPv6 sockets:
    `::ffff:127.0.0.1` counts as 127.0.0.1, and `::` as every interface, 0.0.0.0)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] != "0A":
                continue
            address, port = fields[1].split(":")
            raw = b"".join(bytes.fromhex(address[i : i + 8])[::-1] for i in range(0, len(address), 8))
            if len(raw) == 16:
                raw = raw[12:] if raw[:12] == bytes(10) + b"\xff\xff" else (bytes(4) if raw == bytes(16) else raw)
            name = socket.inet_ntoa(raw) if len(raw) == 4 else socket.inet_ntop(socket.AF_INET6, raw)
            found.add((name, int(port, 16)))
    return found


def test_up_twice_status_down_leaves_nothing() -> None:
    settings = isolated_settings(reachable_folder("clickstream-runtime-test-") / "state")
    try:
        first = runtime_cli(settings, "up")
        assert first.returncode == 0, first.stderr[-3000:]
        pids = recorded_pids(settings.state_dir)
        assert set(pids) == {
            "kafka",
            "postgres",
            "metastore",
            "spark-history",
            "airflow-api-server",
            "airflow-scheduler",
            "airflow-dag-processor",
            "airflow-triggerer",
        }
        # a newcomer sees each service start and become healthy, in order, with its time
        progress = [line for line in first.stdout.splitlines() if ": healthy after " in line]
        assert [line.split(":")[0] for line in progress] == [
            "kafka",
            "postgres",
            "metastore",
            "spark-history",
            "airflow",
        ], progress

        second = runtime_cli(settings, "up")
        assert second.returncode == 0, second.stderr[-3000:]
        assert recorded_pids(settings.state_dir) == pids  # nothing started twice

        status = runtime_cli(settings, "status")
        assert status.returncode == 0, status.stdout
        for name in ("kafka", "postgres", "metastore", "spark-history", "airflow"):
            line = next(line for line in status.stdout.splitlines() if line.startswith(name))
            assert "running" in line and "healthy:" in line and "unhealthy" not in line
        postgres = next(line for line in status.stdout.splitlines() if line.startswith("postgres"))
        assert "databases airflow, metastore" in postgres, postgres
        assert not any(line.startswith("sql") for line in status.stdout.splitlines())  # only make sql starts it
        assert settings.airflow_admin_password not in status.stdout + first.stdout + first.stderr

        shell = sql_shell(settings, "-e", "SHOW DATABASES")  # starts the Thrift server, runs beeline
        assert shell.returncode == 0, shell.stdout[-2000:] + shell.stderr[-3000:]
        assert "default" in shell.stdout
        pids = recorded_pids(settings.state_dir)
        assert "sql" in pids
        status = runtime_cli(settings, "status")
        assert status.returncode == 0 and any(line.startswith("sql") for line in status.stdout.splitlines())
        listening = listening_addresses()
        for port in (settings.spark_history_port, settings.spark_thrift_port):
            assert ("127.0.0.1", port) in listening and ("0.0.0.0", port) not in listening  # noqa: S104
    finally:
        down = runtime_cli(settings, "down")
    assert down.returncode == 0, down.stderr[-3000:]
    assert not any(process_group_alive(pid) for pid in pids.values())
    for port in (
        settings.postgres_port,
        settings.kafka_port,
        settings.kafka_controller_port,
        settings.hive_metastore_port,
        settings.spark_history_port,
        settings.spark_thrift_port,
        settings.airflow_api_port,
    ):
        assert port_is_free("127.0.0.1", port)
    status = runtime_cli(settings, "status")
    assert status.returncode == 3 and "stopped" in status.stdout
    # PostgreSQL was shut down cleanly: its next start needs no recovery
    control = subprocess.run(
        [str(deps.postgres_bin("pg_controldata")), str(PostgresServer(settings).data_dir)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "LC_ALL": "C"},
    )
    assert "Database cluster state:               shut down\n" in control.stdout, control.stdout


def test_port_taken_names_the_port_and_variable(tmp_path: Path) -> None:
    settings = isolated_settings(tmp_path / "state", {"HIVE_METASTORE_DB_URL": "derby"})  # no PostgreSQL to start
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


def test_run_keeps_one_service_in_the_foreground_for_containers(tmp_path: Path) -> None:
    import time

    from app.runtime.process import port_accepts

    # the metastore on Derby, the fallback that needs no PostgreSQL
    settings = isolated_settings(tmp_path / "state", {"HIVE_METASTORE_DB_URL": "derby"})
    env = {**os.environ, **settings.environment()}
    service = subprocess.Popen(
        [sys.executable, "-m", "app.runtime", "run", "metastore"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not port_accepts("127.0.0.1", settings.hive_metastore_port):
            assert service.poll() is None, service.stdout.read().decode()[-3000:] if service.stdout else ""
            assert time.monotonic() < deadline, "the metastore did not listen within 120 s"
            time.sleep(1)
    finally:
        os.killpg(service.pid, signal.SIGTERM)
        service.wait(timeout=60)
    assert port_is_free("127.0.0.1", settings.hive_metastore_port)
    refused = runtime_cli(settings, "run", "airflow")
    assert refused.returncode == 1 and "run them one by one" in refused.stderr
