"""The stream and reconciliation locks in PostgreSQL (`PIPELINE_LOCKS=postgres`), against the
session's real PostgreSQL: one holder at a time across processes (as across hosts, since nothing
local is shared), who holds it, released when the holder is SIGKILLed, lost when its session is
ended (and the holder knows), and a clear error when the database cannot be reached."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from app.checkpoint import CheckpointBusyError, StreamLock, running_stream, stream_lock
from app.locks import LockLostError, LockUnavailableError, PostgresLock, pipeline_lock
from app.runtime.postgres import AIRFLOW_DATABASE, PostgresServer
from app.runtime.service import Service
from app.settings import REPO_ROOT, Settings
from app.storage import Location
from tests.conftest import free_ports

pytestmark = pytest.mark.integration

HOLD = """
import sys, time
from app.checkpoint import StreamLock
from app.settings import load_settings
lock = StreamLock(load_settings(env_file=None), "processing-time")
lock.acquire()
print("held", flush=True)
time.sleep(120)
"""


@pytest.fixture
def lock_settings(settings: Settings, postgres: Service, tmp_path: Path) -> Settings:
    """Settings whose locks live in the session's PostgreSQL, on a checkpoint of this test alone
    (on HDFS by name only: nothing is written there, and no local file is shared)."""
    checkpoint = Location.parse(
        f"hdfs://127.0.0.1:{settings.hdfs_namenode_port}/locks-test/{tmp_path.name}/checkpoints"
    )
    return replace(settings, pipeline_locks="postgres", check_point_location=checkpoint)


def _holder_process(settings: Settings) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        **settings.environment(),
        "PIPELINE_LOCKS": "postgres",
        "CHECK_POINT_LOCATION": settings.check_point_location.uri,
        "PYTHONPATH": str(REPO_ROOT),
    }
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD], cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    if line != "held":
        process.kill()
        pytest.fail(f"the holder did not take the lock: {line} {process.stderr.read() if process.stderr else ''}")
    return process


def test_one_stream_at_a_time_across_processes_and_a_killed_holder_frees_it(lock_settings: Settings) -> None:
    assert isinstance(stream_lock(lock_settings), PostgresLock)
    assert running_stream(lock_settings) is None
    holder = _holder_process(lock_settings)
    try:
        found = running_stream(lock_settings)
        assert found is not None
        assert found["pid"] == holder.pid
        assert found["trigger"] == "processing-time"
        with pytest.raises(CheckpointBusyError, match=f'"pid": {holder.pid}'):
            StreamLock(lock_settings, "available-now").acquire()
        holder.send_signal(signal.SIGKILL)  # no release: the server ends the session when its socket closes
        holder.wait(10)
        deadline = time.monotonic() + 20
        while running_stream(lock_settings) is not None:
            assert time.monotonic() < deadline, "the killed holder's lock was not released"
            time.sleep(0.2)
        with StreamLock(lock_settings, "available-now") as mine:
            mine.confirm()
            assert (running_stream(lock_settings) or {})["pid"] == os.getpid()
        assert running_stream(lock_settings) is None
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(10)


def test_a_holder_whose_session_ends_knows_it_lost_the_lock(lock_settings: Settings) -> None:
    lock = StreamLock(lock_settings, "processing-time")
    lock.acquire()
    try:
        lock.confirm()
        with lock.lock._connection.cursor() as cursor:  # type: ignore[attr-defined]
            cursor.execute("SHOW tcp_keepalives_idle")  # the server probes a silent holder's host
            assert cursor.fetchone() == ("20",)
        admin = PostgresServer(lock_settings).connect(AIRFLOW_DATABASE)
        try:
            with admin.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
                    ("clickstream lock streaming.lock",),
                )
                assert cursor.fetchone() == (True,)
        finally:
            admin.close()
        with pytest.raises(LockLostError):
            lock.confirm()
        with StreamLock(lock_settings, "available-now"):  # the lock is free for another job
            pass
    finally:
        lock.release()


def test_the_reconciliation_lock_waits_for_its_holder(lock_settings: Settings) -> None:
    table = Location.parse(lock_settings.check_point_location.uri + "/reconciliation")
    first = pipeline_lock(lock_settings, table, "_lock")
    order: list[str] = []
    first.__enter__()
    try:

        def second_writer() -> None:
            with pipeline_lock(lock_settings, table, "_lock"):
                order.append("second")

        thread = threading.Thread(target=second_writer)
        thread.start()
        time.sleep(1.0)
        assert order == []  # still waiting
        order.append("first")
    finally:
        first.release()
    thread.join(20)
    assert order == ["first", "second"]


def test_an_unreachable_lock_database_names_its_setting(lock_settings: Settings) -> None:
    (closed,) = free_ports(1)
    unreachable = replace(
        lock_settings, airflow_database_url=f"postgresql+psycopg2://nobody:secret@127.0.0.1:{closed}/airflow"
    )
    with pytest.raises(LockUnavailableError, match="AIRFLOW_DATABASE_URL") as caught:
        StreamLock(unreachable, "available-now").acquire()
    assert "secret" not in str(caught.value)
    mysql = replace(lock_settings, airflow_database_url="mysql://u:p@127.0.0.1/airflow")
    with pytest.raises(LockUnavailableError, match="PIPELINE_LOCKS=file"):
        pipeline_lock(mysql, lock_settings.check_point_location, "streaming.lock")
