"""Background processes of the local runtime: start with a pid file and a log, check, stop by pid.

A `ManagedProcess` is one long-running program (a broker, the metastore, an Airflow component).
It starts in its own session (process group) so that stopping it also stops whatever it spawned,
and its pid file records the pid together with the kernel's start time of that process, so a
stale pid file left by a crash, or a pid the kernel has since given to another program, is never
mistaken for a running service (programs that rename themselves, as Airflow's do, stay known).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)


class RuntimeErrorWithHint(RuntimeError):
    """A runtime failure whose message says what went wrong and what to do."""


class PortInUseError(RuntimeErrorWithHint):
    """A port a service needs is taken by another program."""


class ServiceStartError(RuntimeErrorWithHint):
    """A service did not come up; the message carries the tail of its log."""


def port_is_free(host: str, port: int) -> bool:
    """True when nothing listens on host:port and we could bind it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def port_accepts(host: str, port: int, timeout: float = 1.0) -> bool:
    """True when a TCP connection to host:port succeeds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def ensure_port_free(host: str, port: int, variable: str, service: str) -> None:
    """Raise `PortInUseError` naming the port and the variable that moves it."""
    if not port_is_free(host, port):
        raise PortInUseError(
            f"{service}: port {port} on {host} is already in use by another program; "
            f"stop that program or set {variable} to a free port"
        )


def log_tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return "(no log written)"
    return "\n".join(text.splitlines()[-lines:])


@dataclass
class ManagedProcess:
    """One background program with a pid file under `run_dir` and a log file under `log_dir`."""

    name: str
    command: Sequence[str]
    run_dir: Path
    log_dir: Path
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    stop_signal: signal.Signals = signal.SIGTERM  # the polite stop; SIGKILL after the timeout

    @property
    def pid_file(self) -> Path:
        return self.run_dir / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.log_dir / f"{self.name}.log"

    def read_pid(self) -> int | None:
        """The recorded pid if that process is alive and is still ours; clears a stale pid file."""
        try:
            pid_text, started_text = self.pid_file.read_text().split()[:2]
            pid, started = int(pid_text), int(started_text)
        except FileNotFoundError:
            return None
        except ValueError:
            pid, started = -1, -1
        if pid > 0 and _start_time(pid) == started:
            return pid
        log.warning("%s: removing stale pid file %s (pid %s is not running it)", self.name, self.pid_file, pid)
        self.pid_file.unlink(missing_ok=True)
        return None

    def is_running(self) -> bool:
        return self.read_pid() is not None

    def start(self) -> int:
        """Start the program in the background unless it already runs; return its pid."""
        pid = self.read_pid()
        if pid is not None:
            return pid
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        environment = {**os.environ, **self.env}
        with open(self.log_file, "ab") as log_handle:
            process = subprocess.Popen(
                list(self.command),
                stdin=subprocess.DEVNULL,
                stdout=log_handle,
                stderr=subprocess.STDOUT,
                env=environment,
                cwd=self.cwd,
                start_new_session=True,
            )
        self.pid_file.write_text(f"{process.pid} {_start_time(process.pid)}\n")
        log.info("%s: started, pid %s, log %s", self.name, process.pid, self.log_file)
        return process.pid

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop the program and its process group: `stop_signal`, then SIGKILL after `timeout`."""
        pid = self.ask_to_stop()
        if pid is None:
            return False
        self.wait_stopped(pid, time.monotonic() + timeout)
        return True

    def ask_to_stop(self) -> int | None:
        """Send `stop_signal` to the process group; returns its pid (None: not running)."""
        pid = self.read_pid()
        if pid is not None:
            _signal_group(pid, self.stop_signal)
        return pid

    def wait_stopped(self, pid: int, deadline: float) -> None:
        """Wait for the group `ask_to_stop` signalled to end; SIGKILL it at `deadline` (monotonic)."""
        while time.monotonic() < deadline and process_group_alive(pid):
            time.sleep(0.2)
        if process_group_alive(pid):
            log.warning("%s: did not stop in time, killing pid %s", self.name, pid)
            _signal_group(pid, signal.SIGKILL)
            while process_group_alive(pid):
                time.sleep(0.1)
        self.pid_file.unlink(missing_ok=True)
        log.info("%s: stopped (pid %s)", self.name, pid)

    def failure(self, what: str) -> ServiceStartError:
        return ServiceStartError(f"{self.name}: {what}; last lines of {self.log_file}:\n{log_tail(self.log_file)}")


def wait_until(
    ready: Callable[[], bool],
    process: ManagedProcess,
    timeout: float,
    what: str,
) -> None:
    """Poll `ready()` until true; fail fast with the log's tail if the process died meanwhile."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        if not process.is_running():
            raise process.failure(f"exited before it was {what}")
        time.sleep(0.5)
    raise process.failure(f"not {what} after {timeout:.0f} s")


def _reap(pid: int) -> None:
    """Collect the exit status of a child of this process, so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (state, ppid, pgrp, ...)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None


def _start_time(pid: int) -> int | None:
    """When the process started, in clock ticks since boot; None if it is gone or a zombie."""
    _reap(pid)
    fields_after_name = _stat_fields(pid)
    if fields_after_name is None or fields_after_name[0] == "Z":
        return None
    return int(fields_after_name[19])


def process_group_alive(pgid: int) -> bool:
    """True while any process of group `pgid` runs (zombies waiting to be reaped do not count)."""
    _reap(pgid)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields_after_name = _stat_fields(int(entry.name))
        if fields_after_name and int(fields_after_name[2]) == pgid and fields_after_name[0] != "Z":
            return True
    return False


def _signal_group(pgid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signum)
