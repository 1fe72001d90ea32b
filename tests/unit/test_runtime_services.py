"""Which local services `make up` starts, and how the metastore's PostgreSQL is found in its URL."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.runtime.services import LocalRuntime, PostgresAddress, postgres_address
from tests.conftest import isolated_settings


def test_postgres_address_from_the_jdbc_url() -> None:
    assert postgres_address("jdbc:postgresql://127.0.0.1:5433/metastore") == PostgresAddress(
        "127.0.0.1", 5433, "metastore"
    )
    assert postgres_address("jdbc:postgresql://db.example/hive?ssl=true") == PostgresAddress("db.example", 5432, "hive")
    assert postgres_address("jdbc:derby:;databaseName=x") is None


def default_services(tmp_path: Path, extra: dict[str, str]) -> list[str]:
    runtime = LocalRuntime(isolated_settings(tmp_path, extra))
    return [service.name for service in runtime._defaults()]


def test_make_up_starts_postgres_only_when_the_metastore_url_names_one_here(tmp_path: Path) -> None:
    assert default_services(tmp_path, {}) == ["kafka", "metastore", "spark-history", "airflow"]
    local = {"HIVE_METASTORE_DB_URL": "jdbc:postgresql://127.0.0.1:5433/metastore"}
    assert default_services(tmp_path, local) == ["kafka", "metastore-db", "metastore", "spark-history", "airflow"]
    elsewhere = {"HIVE_METASTORE_DB_URL": "jdbc:postgresql://db.example:5432/metastore"}
    assert "metastore-db" not in default_services(tmp_path, elsewhere)


def test_a_local_kafka_cluster_has_a_node_per_server_in_one_static_quorum(tmp_path: Path) -> None:
    from app.runtime.services import KafkaCluster

    settings = isolated_settings(
        tmp_path, {"KAFKA_SERVERS": "127.0.0.1:19092,127.0.0.1:19094,127.0.0.1:19096", "KAFKA_CONTROLLER_PORT": "19200"}
    )
    cluster = KafkaCluster(settings)
    nodes = cluster.nodes()
    assert [(n.node_id, n.port, n.controller_port) for n in nodes] == [
        (1, 19092, 19200),
        (2, 19094, 19201),
        (3, 19096, 19202),
    ]
    third = cluster.server_properties(nodes[2])
    assert third["controller.quorum.voters"] == "1@127.0.0.1:19200,2@127.0.0.1:19201,3@127.0.0.1:19202"
    assert third["node.id"] == "3" and third["listeners"] == "PLAINTEXT://127.0.0.1:19096,CONTROLLER://127.0.0.1:19202"
    assert (third["transaction.state.log.replication.factor"], third["transaction.state.log.min.isr"]) == ("3", "2")
    assert [process.name for process in cluster.processes()] == ["kafka-node-1", "kafka-node-2", "kafka-node-3"]


def test_an_airflow_restart_skips_the_migration_and_the_pools_it_already_has(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`airflow db migrate` and `airflow pools import` run when the database is new (or was migrated
    by another Airflow version, or lacks a pool), not on every restart: each takes the CLI's 10 s."""
    import sqlite3
    import subprocess

    from app.runtime.services import PUBLISH_POOL, SPARK_POOL, Airflow

    calls: list[list[str]] = []

    def airflow_cli(command: list[str], **_: object) -> subprocess.CompletedProcess[str]:
        calls.append(command[1:3])
        if command[1:3] == ["db", "migrate"]:
            with sqlite3.connect(airflow.home / "airflow.db") as database:
                database.execute("CREATE TABLE IF NOT EXISTS slot_pool (pool TEXT, slots INTEGER)")
        if command[1:3] == ["pools", "import"]:
            with sqlite3.connect(airflow.home / "airflow.db") as database:
                database.executemany("INSERT INTO slot_pool VALUES (?, 1)", [(SPARK_POOL,), (PUBLISH_POOL,)])
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(subprocess, "run", airflow_cli)
    airflow = Airflow(isolated_settings(tmp_path, {}))
    airflow.prepare()
    assert calls == [["db", "migrate"], ["pools", "import"]]
    calls.clear()
    airflow.prepare()
    assert calls == []
    (airflow.home / "migrated-for-airflow").write_text("2.0.0")
    airflow.prepare()
    assert calls == [["db", "migrate"]]
    calls.clear()
    with sqlite3.connect(airflow.home / "airflow.db") as database:
        database.execute("DELETE FROM slot_pool WHERE pool = ?", (PUBLISH_POOL,))
    airflow.prepare()
    assert calls == [["pools", "import"]]


def test_make_airflow_runs_the_real_airflow_command_with_the_runtime_environment(tmp_path: Path) -> None:
    """`make airflow ARGS="..."` (the README's backfill line goes through it): everything after
    `airflow` is Airflow's, run with the home `make up` gives Airflow."""
    import os
    import subprocess
    import sys

    from app.runtime.services import settings_environment
    from app.settings import REPO_ROOT

    settings = isolated_settings(tmp_path, {})
    env = {**os.environ, **settings_environment(settings)}
    shown = subprocess.run(
        [sys.executable, "-m", "app.runtime", "airflow", "config", "get-value", "core", "dags_folder"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert shown.stdout.strip() == str(REPO_ROOT / "dags")


def test_the_airflow_login_shows_a_generated_password_once_and_never_a_chosen_one(tmp_path: Path) -> None:
    from app.runtime.__main__ import airflow_login_hint
    from app.runtime.services import Airflow

    generated = isolated_settings(tmp_path / "generated", {"AIRFLOW_ADMIN_PASSWORD": ""})
    passwords = Airflow(generated).passwords_file  # as the first `make up` leaves it
    passwords.parent.mkdir(parents=True)
    password = "generated-by-up"
    passwords.write_text(f'{{"{generated.airflow_admin_user}": "{password}"}}')
    first = airflow_login_hint(generated, generated_now=True)
    assert f"password: {password}  (generated now and shown once" in first
    later = airflow_login_hint(generated)
    assert password not in later and str(Airflow(generated).passwords_file) in later
    chosen = isolated_settings(tmp_path / "chosen", {"AIRFLOW_ADMIN_PASSWORD": "chosen-secret"})
    assert "chosen-secret" not in airflow_login_hint(chosen, generated_now=True)
