"""Shared test helpers: free ports and settings pointed at a temporary state folder."""

from __future__ import annotations

import atexit
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import pytest

from app.settings import REPO_ROOT, S3_BUCKET, Settings, load_settings, with_own_names
from app.storage import Location

# Airflow imported by a test (DAG parsing) keeps its home in a temporary folder, not in ~/airflow,
# removed when the test session ends (every session left one behind in /tmp). Only the process
# that finds no AIRFLOW_HOME makes one: pytest-xdist's workers and the tests' own subprocesses
# inherit it (each used to make a folder it never used, left behind when it was killed)
_AIRFLOW_HOME: str | None = None
if "AIRFLOW_HOME" not in os.environ:
    _AIRFLOW_HOME = os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="clickstream-airflow-home-")
    atexit.register(shutil.rmtree, _AIRFLOW_HOME, ignore_errors=True)
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")


def pytest_unconfigure() -> None:
    # also here: pytest-xdist's workers leave with os._exit, which runs no atexit function
    if _AIRFLOW_HOME is not None:
        shutil.rmtree(_AIRFLOW_HOME, ignore_errors=True)


def reachable_folder(prefix: str) -> Path:
    """A temporary folder every user can traverse (removed when the session ends): as root, the
    project's PostgreSQL runs as `postgres`, which cannot enter pytest's private folders."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    folder.chmod(0o711)
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


# Services listen below Linux's ephemeral range (32768 and up), where no client's source port and
# no port-0 bind lands; each pytest-xdist worker draws from its own slice, so that two workers never
# pick the same port between choosing it and starting the service on it.
SERVICE_PORTS = range(12_000, 32_000)


def worker_ports() -> range:
    """This worker's slice of `SERVICE_PORTS` (all of it without pytest-xdist)."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw"))
    size = len(SERVICE_PORTS) // workers
    return range(SERVICE_PORTS.start + worker * size, SERVICE_PORTS.start + (worker + 1) * size)


def free_ports(count: int, consecutive: bool = False) -> list[int]:
    """`count` distinct ports of this worker's slice that were free on 127.0.0.1 a moment ago
    (`consecutive`: a run of them)."""
    ports = worker_ports()
    for _ in range(200):
        if consecutive:
            base = random.randrange(ports.start, ports.stop - count)
            chosen = list(range(base, base + count))
        else:
            chosen = random.sample(ports, count)
        if all(_bindable(port) for port in chosen):
            return chosen
    raise RuntimeError(f"no {count} free ports found in {ports}")


def _bindable(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def isolated_settings(state_dir: Path, extra: Mapping[str, str] | None = None) -> Settings:
    """Settings on free ports with all state under `state_dir`, ignoring the repo's `.env`."""
    kafka, controller, metastore, airflow, spark_ui, history, thrift, postgres, namenode, namenode_http, s3 = (
        free_ports(11)
    )
    environ = {
        "CLICKSTREAM_STATE_DIR": str(state_dir),
        "KAFKA_SERVERS": f"127.0.0.1:{kafka}",
        "KAFKA_CONTROLLER_PORT": str(controller),
        "HIVE_METASTORE_PORT": str(metastore),
        "AIRFLOW_API_PORT": str(airflow),
        "SPARK_UI_PORT": str(spark_ui),
        "SPARK_HISTORY_PORT": str(history),
        "SPARK_THRIFT_PORT": str(thrift),
        "POSTGRES_PORT": str(postgres),
        "HDFS_NAMENODE_PORT": str(namenode),
        "HDFS_NAMENODE_HTTP_PORT": str(namenode_http),
        "S3_PORT": str(s3),
        "AIRFLOW_ADMIN_PASSWORD": "test-only-password",
        **(extra or {}),
    }
    return load_settings(environ=environ, env_file=None)


def own_pipeline(settings: Settings, folder: Path, store: str = "local") -> Settings:
    """`settings` with topics, transactional id, database, lake, checkpoint and data folder of one
    test alone (under `folder`), so tests sharing the session's services never see each other's data.
    With `store="hdfs"`, the lake, checkpoint and warehouse are on the session's HDFS (the test asks
    for the `hdfs` fixture), with `store="s3"` in the bucket of the session's SeaweedFS (the `s3`
    fixture), and only the data folder is local."""
    (folder / "data").mkdir(parents=True, exist_ok=True)
    own = replace(
        with_own_names(settings, folder, "test"),
        producer_data_root_directory=folder / "data",
        producer_file_stable_seconds=0.0,
    )
    if store in ("hdfs", "s3"):
        root = Location.parse(
            f"hdfs://{settings.bind_host}:{settings.hdfs_namenode_port}/tests/{uuid.uuid4().hex[:12]}"
            if store == "hdfs"
            else f"s3a://{S3_BUCKET}/tests/{uuid.uuid4().hex[:12]}"
        )
        own = replace(
            own,
            parquet_destination_path=root / "lake",
            check_point_location=root / "checkpoints",
            hive_warehouse_dir=root / "warehouse",
        )
    return own


def run_module(
    settings: Settings,
    module: str,
    *args: str,
    environment: dict[str, str] | None = None,
    timeout: float = 600,
) -> subprocess.CompletedProcess[str]:
    """`python -m <module> args` in the repository with these settings (and `environment`) in its environment."""

    env = {
        **os.environ,
        **settings.environment(),
        "AIRFLOW_ADMIN_PASSWORD": settings.airflow_admin_password,
        **(environment or {}),
    }
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


# The slowest test files first (from the per-file times `make test` prints at its end, on 2 workers):
# `make test` passes --no-loadscope-reorder, so pytest-xdist hands the files out in this order and
# the longest start first, instead of last (its default order is by number of tests). Files not
# listed follow in their collection order.
SLOWEST_FILES_FIRST = (  # seconds on 2 workers, 4 Dec 2026 evening (fresh clone, 30 min run)
    "tests/integration/test_dag_run.py",  # 801
    "tests/integration/test_spark_jobs.py",  # 633
    "tests/integration/test_storage.py",  # 544
    "tests/integration/test_daily_dag.py",  # 538
    "tests/integration/test_scale_out.py",  # new: about 290 alone (a second Airflow, on Celery)
    "tests/integration/test_forget_dag.py",  # new: about 280 (two hourly runs, four daily, two forget)
    "tests/integration/test_erasure.py",  # new: about 150
    "tests/integration/test_kafka_cluster.py",  # 152
    "tests/integration/test_ui_browser.py",  # 140
    "tests/integration/test_runtime_cli.py",  # 140
    "tests/integration/test_producer.py",  # 128
    "tests/integration/test_spark_cluster.py",  # 120
    "tests/integration/test_metastore.py",  # 98
    "tests/integration/test_kafka_security.py",  # 82
    "tests/integration/test_daily.py",  # 48
    "tests/integration/test_hdfs.py",  # HDFS's two daemons start here, unless a storage test started them
    "tests/integration/test_spark.py",  # 31
    "tests/integration/test_airflow.py",  # 23
    "tests/integration/test_sql_shell.py",  # 55 alone (lands the sample in tables of its own)
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slowest files first; or, with `CLICKSTREAM_TEST_SHUFFLE=<seed>`, the tests in an order
    drawn from the seed (every test must pass alone and in any order; with `--dist loadfile` the
    files go in the order their first test lands)."""
    seed = os.environ.get("CLICKSTREAM_TEST_SHUFFLE")
    if seed:
        random.Random(seed).shuffle(items)  # the same order in every xdist worker, as xdist requires
        return
    rank = {path: place for place, path in enumerate(SLOWEST_FILES_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))  # stable: the rest keep their order


_seconds_per_file: dict[str, float] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    # on the xdist controller too: it receives every worker's reports
    path = report.nodeid.split("::")[0]
    _seconds_per_file[path] = _seconds_per_file.get(path, 0.0) + report.duration


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Each test file's time (set-up, tests and tear-down; a worker's first file also starts the
    services): what `SLOWEST_FILES_FIRST` is ordered by."""
    ranked = sorted(_seconds_per_file.items(), key=lambda pair: -pair[1])
    if len(ranked) > 1:
        terminalreporter.write_sep("=", "seconds per test file, slowest 20")
        for path, seconds in ranked[:20]:
            terminalreporter.write_line(f"{seconds:8.1f}s {path}")


def pytest_report_header() -> str | None:
    seed = os.environ.get("CLICKSTREAM_TEST_SHUFFLE")
    return f"tests shuffled with seed {seed} (CLICKSTREAM_TEST_SHUFFLE)" if seed else None
