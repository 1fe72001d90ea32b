"""Which lock backend the settings pick, and the file lock's holder record (the PostgreSQL
backend is tested against a real server in tests/integration/test_locks.py)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from app.locks import FileLock, LockBusyError, PostgresLock, holder_info, lock_backend, pipeline_lock
from app.storage import Location
from tests.conftest import isolated_settings


@pytest.mark.parametrize(
    ("locks", "executor", "expected"),
    [
        ("auto", "LocalExecutor", "file"),
        ("auto", "CeleryExecutor", "postgres"),
        ("file", "CeleryExecutor", "file"),
        ("postgres", "LocalExecutor", "postgres"),
    ],
)
def test_auto_keeps_locks_in_postgres_when_tasks_may_run_on_several_hosts(
    tmp_path: Path, locks: str, executor: str, expected: str
) -> None:
    settings = isolated_settings(tmp_path, {"PIPELINE_LOCKS": locks, "AIRFLOW_EXECUTOR": executor})
    assert lock_backend(settings) == expected
    lock = pipeline_lock(settings, settings.check_point_location, "streaming.lock")
    assert isinstance(lock, FileLock if expected == "file" else PostgresLock)


def test_a_bad_lock_setting_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="PIPELINE_LOCKS"):
        isolated_settings(tmp_path, {"PIPELINE_LOCKS": "redis"})


def test_postgres_lock_keys_differ_by_location_and_name(tmp_path: Path) -> None:
    settings = replace(isolated_settings(tmp_path), pipeline_locks="postgres")
    a = Location.parse("hdfs://nn:8020/a/checkpoints")
    b = Location.parse("hdfs://nn:8020/b/checkpoints")
    keys = {
        pipeline_lock(settings, where, name).key  # type: ignore[attr-defined]
        for where in (a, b)
        for name in ("streaming.lock", "_lock")
    }
    assert len(keys) == 4
    assert all(-(2**63) <= key < 2**63 for key in keys)


def test_a_file_lock_says_who_holds_it(tmp_path: Path) -> None:
    location = Location.local(tmp_path / "table")
    first = FileLock(location, "_lock", tmp_path / "state")
    assert first.holder() is None
    first.acquire(holder_info(job="first"), wait=False)
    try:
        other = FileLock(location, "_lock", tmp_path / "state")
        with pytest.raises(LockBusyError) as busy:
            other.acquire(holder_info(job="second"), wait=False)
        assert busy.value.holder["job"] == "first"
        assert (other.holder() or {})["job"] == "first"
    finally:
        first.release()
    assert first.holder() is None
