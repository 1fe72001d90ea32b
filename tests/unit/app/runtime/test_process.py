"""Background processes: pid files with start times, stale pid files, stopping whole groups."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from app.runtime.process import (
    ManagedProcess,
    PortInUseError,
    ServiceStartError,
    ensure_port_free,
    port_is_free,
    process_group_alive,
    wait_until,
)


def sleeper(tmp_path: Path, name: str = "sleeper", script: str = "sleep 60") -> ManagedProcess:
    return ManagedProcess(
        name=name, command=["bash", "-c", script], run_dir=tmp_path / "run", log_dir=tmp_path / "logs"
    )


def test_start_is_idempotent_and_stop_ends_the_whole_group(tmp_path: Path) -> None:
    process = sleeper(tmp_path, script="sleep 60 & sleep 60")  # a child of its own, like the JVM wrappers
    pid = process.start()
    assert process.start() == pid
    assert process.is_running()
    assert process.stop(timeout=5)
    assert not process.is_running()
    assert not process_group_alive(pid)
    assert not process.pid_file.exists()
    assert not process.stop()


def test_stale_pid_file_of_a_dead_process_is_removed(tmp_path: Path) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    process = sleeper(tmp_path)
    process.run_dir.mkdir(parents=True)
    process.pid_file.write_text(f"{dead.pid} 12345\n")
    assert process.read_pid() is None
    assert not process.pid_file.exists()


def test_pid_reused_by_another_program_is_not_ours(tmp_path: Path) -> None:
    process = sleeper(tmp_path)
    process.run_dir.mkdir(parents=True)
    process.pid_file.write_text(f"{os.getpid()} 1\n")  # alive, but started at another time
    assert process.read_pid() is None


def test_garbage_pid_file_is_treated_as_stale(tmp_path: Path) -> None:
    process = sleeper(tmp_path)
    process.run_dir.mkdir(parents=True)
    process.pid_file.write_text("not a pid\n")
    assert process.read_pid() is None


def test_port_in_use_names_port_and_variable() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        assert not port_is_free("127.0.0.1", port)
        with pytest.raises(
            PortInUseError, match=rf"kafka: port {port} on 127.0.0.1 is already in use.*set KAFKA_SERVERS"
        ):
            ensure_port_free("127.0.0.1", port, "KAFKA_SERVERS", "kafka")


def test_wait_until_fails_fast_with_the_log_when_the_process_dies(tmp_path: Path) -> None:
    process = sleeper(tmp_path, script="echo 'bad config: no such file'; exit 3")
    process.start()
    started = time.monotonic()
    with pytest.raises(ServiceStartError, match=r"sleeper: exited before it was healthy(.|\n)*bad config"):
        wait_until(lambda: False, process, timeout=60, what="healthy")
    assert time.monotonic() - started < 10
