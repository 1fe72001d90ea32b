"""The locks that keep two writers off the same table data: the streaming job's lock on its
checkpoint (one job per checkpoint) and the reconciliation's lock on its table (one day file
rewritten at a time). `PIPELINE_LOCKS` says where they live (`docs/design/scale-out.md`):

- `file`: an exclusive `flock` on a local file: beside a local location, and in the state folder
  (`locks/`) for one on another store. The kernel releases it when the holding process ends,
  however it ends; only processes on this host see it.
- `postgres`: a session-level advisory lock in Airflow's metadata database, which every host that
  runs tasks reaches already. Its key is a hash of the lock's name and location's URI, so two
  checkpoints never share a lock. The server releases it when the holding session ends: at once
  when the holder's process dies (its socket closes), and within about a minute when its host
  is lost (TCP keepalives). Who holds it is a row of `clickstream_lock_holders` in that database.
  A holder whose session was lost has lost the lock: `confirm()` says so, and the streaming job
  calls it before each micro-batch, so it stops instead of writing beside a new holder.
- `auto` (the default): `postgres` with the CeleryExecutor (tasks may run on several hosts),
  `file` with the LocalExecutor.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import socket
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import IO, Any

from app.settings import Settings
from app.storage import Location, local_lock_file

log = logging.getLogger(__name__)

HOLDERS_TABLE = "clickstream_lock_holders"


class LockBusyError(RuntimeError):
    """Someone else holds the lock; `holder` says who (pid, host, and what the holder added)."""

    def __init__(self, name: str, holder: dict[str, Any]) -> None:
        super().__init__(f"{name} is held by {json.dumps(holder, sort_keys=True)}")
        self.holder = holder


class LockLostError(RuntimeError):
    """The lock's session ended while it was held: another process may hold it now."""


class LockUnavailableError(RuntimeError):
    """The database that holds the locks cannot be reached; the message names the setting."""


def holder_info(**extra: Any) -> dict[str, Any]:
    """Who takes a lock: this process, this host, when, and what the caller adds."""
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return {"pid": os.getpid(), "host": socket.gethostname(), "started": started, **extra}


class PipelineLock(ABC):
    """An exclusive lock on `name` for `location`, held from `acquire` to `release`."""

    def __init__(self, location: Location, name: str) -> None:
        self.location = location
        self.name = name

    @abstractmethod
    def acquire(self, holder: dict[str, Any], *, wait: bool) -> None:
        """Take the lock; with `wait`, until it is free, else `LockBusyError` when it is taken."""

    @abstractmethod
    def release(self) -> None:
        """Give the lock back (nothing when it is not held)."""

    @abstractmethod
    def holder(self) -> dict[str, Any] | None:
        """Who holds the lock now (without taking it), or None when nobody does."""

    def confirm(self) -> None:  # noqa: B027 - a file lock cannot be lost while its process lives
        """Raise `LockLostError` when a lock that was taken is held no longer."""

    def __enter__(self) -> PipelineLock:
        self.acquire(holder_info(), wait=True)
        return self

    def __exit__(self, *_: object) -> None:
        self.release()


class FileLock(PipelineLock):
    """`flock` on a local file, which holds the holder's JSON."""

    def __init__(self, location: Location, name: str, state_dir: Path) -> None:
        super().__init__(location, name)
        self.path = local_lock_file(location, name, state_dir)
        self._handle: IO[str] | None = None

    def acquire(self, holder: dict[str, Any], *, wait: bool) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")  # noqa: SIM115 - held until release()
        try:
            fcntl.flock(handle, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            text = handle.read().strip()
            handle.close()
            raise LockBusyError(self.name, _parsed_holder(text)) from None
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps(holder))
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None

    def holder(self) -> dict[str, Any] | None:
        if not self.path.exists():
            return None
        with open(self.path) as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return _parsed_holder(handle.read().strip())
            fcntl.flock(handle, fcntl.LOCK_UN)
            return None


class PostgresLock(PipelineLock):
    """A session-level advisory lock (`pg_advisory_lock`) on its own connection, kept open while held."""

    def __init__(self, location: Location, name: str, database_url: str, setting: str) -> None:
        super().__init__(location, name)
        self.database_url = database_url
        self.setting = setting  # the setting that names the database, for errors
        digest = hashlib.sha256(f"clickstream-lock:{name}:{location.uri}".encode()).digest()
        self.key = int.from_bytes(digest[:8], "big", signed=True)  # advisory keys are signed bigints
        self._connection: Any = None

    def _connect(self) -> Any:
        import psycopg2

        try:
            connection = psycopg2.connect(
                _libpq_url(self.database_url),
                connect_timeout=10,
                application_name=f"clickstream lock {self.name}"[:63],
                # both ends probe an idle connection: the server ends the session of a lost host
                # (freeing its locks) after 20 + 4 x 5 s, and the holder sees a lost server as fast
                keepalives=1,
                keepalives_idle=20,
                keepalives_interval=5,
                keepalives_count=4,
                options="-c tcp_keepalives_idle=20 -c tcp_keepalives_interval=5 -c tcp_keepalives_count=4",
            )
        except psycopg2.Error as error:
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise LockUnavailableError(
                f"the locks' database ({self.setting}, PIPELINE_LOCKS=postgres) cannot be reached: {first_line}"
            ) from None
        connection.autocommit = True
        return connection

    def acquire(self, holder: dict[str, Any], *, wait: bool) -> None:
        connection = self._connect()
        try:
            with connection.cursor() as cursor:
                if wait:
                    cursor.execute("SELECT pg_advisory_lock(%s)", (self.key,))
                else:
                    cursor.execute("SELECT pg_try_advisory_lock(%s)", (self.key,))
                    if not cursor.fetchone()[0]:
                        raise LockBusyError(self.name, self._recorded_holder(cursor) or {"holder": "unknown"})
                _create_holders_table(cursor)
                cursor.execute(
                    f"INSERT INTO {HOLDERS_TABLE} (key, name, location, holder, taken) VALUES (%s, %s, %s, %s, now()) "  # noqa: S608 - a constant
                    "ON CONFLICT (key) DO UPDATE SET holder = EXCLUDED.holder, taken = EXCLUDED.taken",
                    (self.key, self.name, self.location.uri, json.dumps(holder)),
                )
        except BaseException:
            connection.close()
            raise
        self._connection = connection

    def confirm(self) -> None:
        import psycopg2

        if self._connection is None:
            raise LockLostError(f"{self.name} on {self.location} is not held")
        try:
            with self._connection.cursor() as cursor:
                cursor.execute(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid = pg_backend_pid() "
                    "AND classid = ((%s >> 32) & 4294967295)::oid AND objid = (%s & 4294967295)::oid AND objsubid = 1",
                    (self.key, self.key),
                )
                held = cursor.fetchone()[0] > 0
        except psycopg2.Error as error:
            raise LockLostError(f"{self.name} on {self.location}: the lock's session ended ({error})") from None
        if not held:
            raise LockLostError(f"{self.name} on {self.location} is held no longer")

    def release(self) -> None:
        if self._connection is None:
            return
        connection, self._connection = self._connection, None
        try:
            with connection.cursor() as cursor:
                cursor.execute(f"DELETE FROM {HOLDERS_TABLE} WHERE key = %s", (self.key,))  # noqa: S608 - a constant
                cursor.execute("SELECT pg_advisory_unlock(%s)", (self.key,))
        except Exception as error:  # noqa: BLE001 - closing the session below releases it anyway
            log.warning("releasing %s: %s (closing its session releases it)", self.name, error)
        finally:
            connection.close()

    def holder(self) -> dict[str, Any] | None:
        connection = self._connect()
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_try_advisory_lock_shared(%s)", (self.key,))
                if cursor.fetchone()[0]:
                    cursor.execute("SELECT pg_advisory_unlock_shared(%s)", (self.key,))
                    return None
                return self._recorded_holder(cursor) or {"holder": "unknown"}
        finally:
            connection.close()

    def _recorded_holder(self, cursor: Any) -> dict[str, Any] | None:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", (HOLDERS_TABLE,))
        if not cursor.fetchone()[0]:
            return None
        cursor.execute(f"SELECT holder FROM {HOLDERS_TABLE} WHERE key = %s", (self.key,))  # noqa: S608 - a constant
        row = cursor.fetchone()
        return _parsed_holder(row[0]) if row else None


def _create_holders_table(cursor: Any) -> None:
    import psycopg2

    cursor.execute("SELECT to_regclass(%s) IS NOT NULL", (HOLDERS_TABLE,))
    if cursor.fetchone()[0]:
        return
    # another holder may create it at the same moment: the loser's error says it exists now
    with contextlib.suppress(psycopg2.errors.UniqueViolation, psycopg2.errors.DuplicateTable):
        cursor.execute(
            f"CREATE TABLE IF NOT EXISTS {HOLDERS_TABLE} "
            "(key bigint PRIMARY KEY, name text NOT NULL, location text NOT NULL, holder text NOT NULL, "
            "taken timestamptz NOT NULL)"
        )


def _parsed_holder(text: str) -> dict[str, Any]:
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    return parsed if isinstance(parsed, dict) else {"holder": text or "unknown"}


def _libpq_url(sqlalchemy_url: str) -> str:
    """`postgresql+psycopg2://...` (SQLAlchemy's form) as libpq takes it: `postgresql://...`."""
    scheme, _, rest = sqlalchemy_url.partition("://")
    return f"{scheme.partition('+')[0]}://{rest}"


def lock_backend(settings: Settings) -> str:
    """`file` or `postgres`: `PIPELINE_LOCKS`, with `auto` resolved by the executor."""
    if settings.pipeline_locks != "auto":
        return settings.pipeline_locks
    return "postgres" if settings.airflow_executor == "CeleryExecutor" else "file"


def pipeline_lock(settings: Settings, location: Location, name: str) -> PipelineLock:
    """The lock `name` for `location`, where `PIPELINE_LOCKS` keeps locks."""
    if lock_backend(settings) == "file":
        return FileLock(location, name, settings.state_dir)
    from app.runtime.airflow_server import Airflow

    url = Airflow(settings).database_url()  # the database `make up` gives Airflow
    setting = (
        "AIRFLOW_DATABASE_URL"
        if settings.airflow_database_url
        else "POSTGRES_PORT, the local PostgreSQL; AIRFLOW_DATABASE_URL names another"
    )
    if not url.startswith("postgresql"):
        raise LockUnavailableError(
            "PIPELINE_LOCKS=postgres keeps the locks in Airflow's database, and AIRFLOW_DATABASE_URL is not "
            "PostgreSQL; set PIPELINE_LOCKS=file (writers on one host)"
        )
    return PostgresLock(location, name, url, setting)
