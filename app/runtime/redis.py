"""The Redis server that carries Airflow's Celery queue (`AIRFLOW_EXECUTOR=CeleryExecutor`).

Debian's `redis-server` (installed by `make setup`, as PostgreSQL is), on the bind host only, its
data in `<state>/redis/`. Its append-only file is kept, so a restart does not lose the tasks queued
for the workers (Airflow would send them again only after `task_queued_timeout`). Health is its
answer to PING.
"""

from __future__ import annotations

import logging
import shutil
import socket
from pathlib import Path

from app.runtime import deps
from app.runtime.process import ManagedProcess
from app.runtime.service import Health, Service

log = logging.getLogger(__name__)


def redis_server() -> Path:
    """The `redis-server` program, or a MissingDependencyError saying how to install it."""
    found = shutil.which("redis-server") or next(
        (str(path) for path in (Path("/usr/bin/redis-server"), Path("/usr/sbin/redis-server")) if path.exists()), None
    )
    if found is None:
        raise deps.MissingDependencyError(
            "redis-server is missing (the CeleryExecutor's queue); `make setup` installs it, or "
            "`apt-get install redis-server`"
        )
    return Path(found)


class Redis(Service):
    """One Redis server on the bind host: the Celery broker of Airflow."""

    name = "redis"
    start_timeout = 30.0
    port_field = "redis_port"

    @property
    def url(self) -> str:
        """Celery's broker URL for this server (database 0)."""
        return f"redis://{self.settings.bind_host}:{self.settings.redis_port}/0"

    def wanted(self) -> bool:
        """Whether Airflow runs tasks through Celery on this host's Redis (then `make up` starts it):
        the CeleryExecutor, with no broker elsewhere (`AIRFLOW_CELERY_BROKER_URL`)."""
        return self.settings.airflow_executor == "CeleryExecutor" and not self.settings.airflow_celery_broker_url

    def processes(self) -> list[ManagedProcess]:
        command = [
            str(redis_server()),
            "--bind", self.settings.bind_host,
            "--port", str(self.settings.redis_port),
            "--dir", str(self.home),
            "--appendonly", "yes",
            "--save", "",
            "--protected-mode", "yes",
            "--daemonize", "no",
        ]  # fmt: skip
        return [self.managed("redis", command)]

    def prepare(self) -> None:
        redis_server()
        self.home.mkdir(parents=True, exist_ok=True)

    def health(self) -> Health:
        address = (self.settings.bind_host, self.settings.redis_port)
        try:
            with socket.create_connection(address, timeout=3) as connection:
                connection.sendall(b"PING\r\n")
                answer = connection.recv(64)
        except OSError as error:
            return Health(False, f"{self.url}: {error}")
        if not answer.startswith(b"+PONG"):
            return Health(False, f"{self.url}: answered {answer[:40]!r} to PING")
        return Health(True, f"Celery's queue at {self.url}")
