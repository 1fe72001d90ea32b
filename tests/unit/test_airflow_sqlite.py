"""Savepoints on Airflow's SQLite database take the write lock first, so a read-then-write savepoint
(how `airflow backfill create` makes each run) survives another process's commit in between."""

from __future__ import annotations

import importlib
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from app.runtime import airflow_sqlite
from app.runtime.services import AIRFLOW_SQLITE_CONNECT_ARGS


@pytest.fixture
def database(tmp_path: Path) -> Path:
    path = tmp_path / "airflow.db"
    with closing_connection(path) as connection:
        connection.execute("PRAGMA journal_mode=WAL")  # as Airflow.prepare leaves it
        connection.execute("CREATE TABLE dag_run (logical_date TEXT PRIMARY KEY)")
        connection.commit()
    return path


@contextmanager
def closing_connection(path: Path, timeout: float = 5) -> Iterator[sqlite3.Connection]:
    connection = sqlite3.connect(path, timeout=timeout)
    try:
        yield connection
    finally:
        connection.close()


def engine_for(path: Path) -> Engine:
    return create_engine(f"sqlite:///{path}", connect_args=airflow_sqlite.CONNECT_ARGS)


def insert_as_another_process(path: Path, logical_date: str, timeout: float) -> None:
    with closing_connection(path, timeout) as connection:
        connection.execute("INSERT INTO dag_run VALUES (?)", (logical_date,))
        connection.commit()


def rows(path: Path) -> set[str]:
    with closing_connection(path) as connection:
        return {row[0] for row in connection.execute("SELECT logical_date FROM dag_run")}


@contextmanager
def listener_removed() -> Iterator[None]:
    event.remove(Engine, "savepoint", airflow_sqlite.take_write_lock_before_savepoint)
    try:
        yield
    finally:
        airflow_sqlite.register()


def test_airflow_finds_the_connect_args_by_the_path_in_its_environment() -> None:
    module, _, name = AIRFLOW_SQLITE_CONNECT_ARGS.rpartition(".")
    assert getattr(importlib.import_module(module), name) == {"timeout": 60}
    # importing the module (as Airflow does to read the arguments) registered the listener
    assert event.contains(Engine, "savepoint", airflow_sqlite.take_write_lock_before_savepoint)


def test_without_the_listener_a_commit_between_read_and_write_fails_at_once(database: Path) -> None:
    """What SQLite does: the busy timeout (60 s) cannot help a savepoint's stale snapshot."""
    with (
        listener_removed(),
        Session(engine_for(database)) as session,
        pytest.raises(OperationalError, match="database is locked"),
        session.begin_nested(),
    ):
        session.execute(text("SELECT count(*) FROM dag_run")).scalar_one()
        insert_as_another_process(database, "2017-10-01T02", timeout=0)
        session.execute(text("INSERT INTO dag_run VALUES ('2017-10-01T03')"))
    assert rows(database) == {"2017-10-01T02"}


def test_a_savepoint_holds_the_write_lock_so_the_other_writer_waits_and_both_commit(database: Path) -> None:
    with Session(engine_for(database)) as session:
        with session.begin_nested():
            session.execute(text("SELECT count(*) FROM dag_run")).scalar_one()
            with pytest.raises(sqlite3.OperationalError, match="database is locked"):
                insert_as_another_process(database, "refused", timeout=0)  # the lock is held already
            other = threading.Thread(target=insert_as_another_process, args=(database, "2017-10-01T02", 30))
            other.start()
            session.execute(text("INSERT INTO dag_run VALUES ('2017-10-01T03')"))
        assert other.is_alive()  # still waiting: releasing the savepoint does not end the transaction
        session.commit()
    other.join(timeout=30)
    assert not other.is_alive()
    assert rows(database) == {"2017-10-01T02", "2017-10-01T03"}


def test_a_savepoint_inside_a_begun_transaction_is_left_alone(database: Path) -> None:
    with Session(engine_for(database)) as session:
        session.execute(text("INSERT INTO dag_run VALUES ('2017-10-01T01')"))  # pysqlite begins here
        with session.begin_nested():
            session.execute(text("INSERT INTO dag_run VALUES ('2017-10-01T02')"))
        session.commit()
    assert rows(database) == {"2017-10-01T01", "2017-10-01T02"}
