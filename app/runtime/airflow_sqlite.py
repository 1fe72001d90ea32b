"""Airflow's SQLite metadata database (the local default): its connection arguments, and savepoints
that take the write lock before they read.

Airflow reads `CONNECT_ARGS` through `[database] sql_alchemy_connect_args`, which imports this module
in every Airflow process (scheduler, api-server, dag-processor, triggerer, CLI commands). Importing
it also registers `take_write_lock_before_savepoint` for every SQLAlchemy engine of that process.

Why the savepoints. pysqlite begins a transaction only before an INSERT, UPDATE or DELETE. A
SAVEPOINT outside a transaction begins a deferred one inside SQLite instead: its first SELECT pins a
snapshot of the write-ahead log, and its first write after another process committed fails at once
with "database is locked" (SQLITE_BUSY_SNAPSHOT). The busy timeout does not apply, as no wait could
make the snapshot current. `airflow backfill create` (and the UI's backfill) creates each run
inside `session.begin_nested()`, so it failed whenever the scheduler committed between the run's
look-up and its insert. With `BEGIN IMMEDIATE` before such a savepoint, the transaction holds the
write lock from its start (waiting up to the busy timeout for it), and everything it reads stays
current until it commits. Savepoints inside a transaction that has begun are left as they are.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

log = logging.getLogger(__name__)

# the scheduler, the api-server, the dag-processor, the triggerer and CLI commands share the file:
# wait up to a minute for a write lock instead of pysqlite's default 5 seconds
BUSY_TIMEOUT_SECONDS = 60
CONNECT_ARGS: dict[str, Any] = {"timeout": BUSY_TIMEOUT_SECONDS}


def take_write_lock_before_savepoint(connection: Connection, name: str | None) -> None:
    """SQLAlchemy `savepoint` event: on pysqlite outside a transaction, `BEGIN IMMEDIATE` first."""
    if connection.dialect.name != "sqlite":
        return
    dbapi_connection = connection.connection.dbapi_connection
    if isinstance(dbapi_connection, sqlite3.Connection) and not dbapi_connection.in_transaction:
        dbapi_connection.execute("BEGIN IMMEDIATE")


def register() -> None:
    """Listen on every engine of this process (once, however often it is called)."""
    if not event.contains(Engine, "savepoint", take_write_lock_before_savepoint):
        event.listen(Engine, "savepoint", take_write_lock_before_savepoint)


register()
