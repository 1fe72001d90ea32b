"""The one interface every local service follows (`Service`: its ports, processes, configuration,
health, start, stop and status) and what the services share: secrets kept in the state folder,
JVM flags, Hadoop-style configuration files and a console log4j2 configuration.

Each service writes its configuration under the state folder, refuses to start on a taken port
(naming the variable that moves it), waits until it is really healthy, and stops by pid. One
module per service implements it; `app/runtime/local.py` runs them in order.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

from app.runtime import deps
from app.runtime.process import ManagedProcess, ensure_port_free, wait_until
from app.settings import Settings, setting_variable

log = logging.getLogger(__name__)


def kept_secret(path: Path, random_bytes: int) -> str:
    """A random secret generated once into `path` (mode 600, in a folder of mode 700), then read."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.write_text(secrets.token_urlsafe(random_bytes))
        path.chmod(0o600)
    return path.read_text().strip()


@dataclass(frozen=True)
class Health:
    healthy: bool
    detail: str


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    running: bool
    pids: tuple[int, ...]
    ports: tuple[int, ...]
    health: Health


class Service:
    """A local service: some processes and the ports they own."""

    name = "service"
    start_timeout = 120.0

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.home = settings.state_dir / self.name

    @property
    def run_dir(self) -> Path:
        return self.settings.state_dir / "run"

    # the `Settings` field of the one port a service listens on (those with other ports override `ports`)
    port_field = ""

    def ports(self) -> list[tuple[int, str]]:
        """(port, variable that sets it) pairs this service listens on."""
        if not self.port_field:
            raise NotImplementedError(f"{type(self).__name__} names no port_field and does not override ports()")
        return [(getattr(self.settings, self.port_field), setting_variable(self.port_field))]

    def processes(self) -> list[ManagedProcess]:
        raise NotImplementedError

    def prepare(self) -> None:
        """Write configuration and do one-time initialisation before the first start."""

    def health(self) -> Health:
        raise NotImplementedError

    def managed(
        self,
        name: str,
        command: list[str],
        env: dict[str, str] | None = None,
        stop_signal: signal.Signals = signal.SIGTERM,
    ) -> ManagedProcess:
        return ManagedProcess(
            name=name,
            command=command,
            run_dir=self.run_dir,
            log_dir=self.settings.logs_dir,
            env=env or {},
            cwd=self.home,
            stop_signal=stop_signal,
        )

    def start(self) -> None:
        processes = self.processes()
        if all(process.is_running() for process in processes):
            log.info("%s: already running", self.name)
            return
        if any(process.is_running() for process in processes):
            # half up (a component crashed): restart the whole service cleanly
            self.stop()
        for port, variable in self.ports():
            ensure_port_free(self.settings.bind_host, port, variable, self.name)
        self.home.mkdir(parents=True, exist_ok=True)
        self.prepare()
        for process in processes:
            process.start()
        wait_until(lambda: self.health().healthy, processes[0], self.start_timeout, "healthy")
        for process in processes:
            if not process.is_running():
                raise process.failure("exited during start-up")
        log.info("%s: healthy", self.name)

    def stop(self, timeout: float = 30.0) -> None:
        """Ask every process to stop at once, then wait for them (SIGKILL after `timeout`): the
        nodes of a Kafka cluster stopped one by one would leave the last without a quorum to
        leave, waiting out its timeout."""
        signalled = [(process, process.ask_to_stop()) for process in reversed(self.processes())]
        deadline = time.monotonic() + timeout
        for process, pid in signalled:
            if pid is not None:
                process.wait_stopped(pid, deadline)

    def run_in_foreground(self) -> None:
        """Replace this process by the service's (one-process services only): for containers,
        where the container's runtime supervises it. Logs go to standard output."""
        processes = self.processes()
        if len(processes) != 1:
            raise ValueError(
                f"{self.name} has {len(processes)} processes; run them one by one (e.g. airflow's own CLI)"
            )
        self.home.mkdir(parents=True, exist_ok=True)
        self.prepare()
        process = processes[0]
        folder = process.cwd or self.home
        folder.mkdir(parents=True, exist_ok=True)
        os.chdir(folder)
        command = list(process.command)
        os.execvpe(command[0], command, {**os.environ, **process.env})  # noqa: S606

    def status(self) -> ServiceStatus:
        pids = tuple(pid for process in self.processes() if (pid := process.read_pid()) is not None)
        running = len(pids) == len(self.processes())
        health = self.health() if pids else Health(False, "not running")
        return ServiceStatus(self.name, running, pids, tuple(port for port, _ in self.ports()), health)


def java_service_flags(settings: Settings, home: Path, heap: str) -> list[str]:
    tmp = home / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    return [
        deps.java_executable(),
        f"-Xmx{heap}",
        f"-Xms{heap}",
        "-XX:+UseG1GC",
        f"-Djava.io.tmpdir={tmp}",
        f"-Dclickstream.home={home}",
    ]


def hadoop_xml(properties: dict[str, str]) -> str:
    """A Hadoop-style configuration file (hive-site.xml) with these properties."""
    body = "".join(
        f"  <property><name>{escape(key)}</name><value>{escape(value)}</value></property>\n"
        for key, value in properties.items()
    )
    return f'<?xml version="1.0"?>\n<configuration>\n{body}</configuration>\n'


LOG4J2_CONSOLE = """\
status = warn
appender.console.type = Console
appender.console.name = console
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{{ISO8601}} %-5p [%c{{1}}] %m%n
rootLogger.level = {level}
rootLogger.appenderRef.console.ref = console
"""
