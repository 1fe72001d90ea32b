"""Which local services `make up` starts, where their databases are, and when Airflow migrates."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from app.runtime.local import LocalRuntime
from app.runtime.postgres import PostgresAddress, postgres_address
from tests.conftest import isolated_settings, reachable_folder, run_module


def test_postgres_address_from_the_jdbc_url() -> None:
    assert postgres_address("jdbc:postgresql://127.0.0.1:5433/metastore") == PostgresAddress(
        "127.0.0.1", 5433, "metastore"
    )
    assert postgres_address("jdbc:postgresql://db.example/hive?ssl=true") == PostgresAddress("db.example", 5432, "hive")
    assert postgres_address("jdbc:derby:;databaseName=x") is None


def default_services(tmp_path: Path, extra: dict[str, str]) -> list[str]:
    runtime = LocalRuntime(isolated_settings(tmp_path, extra))
    return [service.name for service in runtime._defaults()]


def test_make_up_starts_postgres_while_a_database_of_the_pipeline_lives_there(tmp_path: Path) -> None:
    assert default_services(tmp_path, {}) == ["kafka", "postgres", "metastore", "spark-history", "airflow"]
    elsewhere = {
        "HIVE_METASTORE_DB_URL": "jdbc:postgresql://db.example:5432/metastore",
        "AIRFLOW_DATABASE_URL": "postgresql+psycopg2://airflow:secret@db.example:5432/airflow",
    }
    assert "postgres" not in default_services(tmp_path, elsewhere)
    assert "postgres" in default_services(tmp_path, {**elsewhere, "HIVE_METASTORE_DB_URL": ""})
    assert "postgres" in default_services(tmp_path, {**elsewhere, "AIRFLOW_DATABASE_URL": ""})
    assert "postgres" not in default_services(tmp_path, {**elsewhere, "HIVE_METASTORE_DB_URL": "derby"})


def test_make_up_starts_the_local_hdfs_while_tables_live_there(tmp_path: Path) -> None:
    assert "hdfs" not in default_services(tmp_path, {})
    on_hdfs = default_services(tmp_path, {"CLICKSTREAM_STORAGE": "hdfs"})
    assert on_hdfs == ["kafka", "postgres", "hdfs", "metastore", "spark-history", "airflow"]  # before its users
    port = "18020"
    checkpoints_here = {"HDFS_NAMENODE_PORT": port, "CHECK_POINT_LOCATION": f"hdfs://localhost:{port}/checkpoints"}
    assert "hdfs" in default_services(tmp_path, checkpoints_here)
    assert "hdfs" not in default_services(tmp_path, {"PARQUET_DESTINATION_PATH": "hdfs://nn.example:8020/lake"})


def test_make_up_starts_the_local_s3_store_while_tables_live_there(tmp_path: Path) -> None:
    assert "s3" not in default_services(tmp_path, {})
    on_s3 = default_services(tmp_path, {"CLICKSTREAM_STORAGE": "s3"})
    assert on_s3 == ["kafka", "postgres", "s3", "metastore", "spark-history", "airflow"]  # before its users
    elsewhere = {"CLICKSTREAM_STORAGE": "s3", "S3_ENDPOINT": "https://s3.eu-west-1.amazonaws.com"}
    assert "s3" not in default_services(tmp_path, elsewhere)  # another store: nothing to start


def test_up_of_named_services_starts_the_local_postgres_they_need_first(tmp_path: Path) -> None:
    def started(names: list[str], extra: dict[str, str]) -> list[str]:
        runtime = LocalRuntime(isolated_settings(tmp_path, extra), names)
        return [service.name for service in runtime._with_their_database(runtime.services)]

    assert started(["metastore"], {}) == ["postgres", "metastore"]
    assert started(["airflow"], {}) == ["postgres", "airflow"]
    assert started(["metastore"], {"HIVE_METASTORE_DB_URL": "derby"}) == ["metastore"]
    assert started(["kafka"], {}) == ["kafka"]


def test_the_databases_urls_name_the_local_postgres_with_generated_passwords(tmp_path: Path) -> None:
    from app.runtime.airflow_server import Airflow
    from app.runtime.hive_metastore import HiveMetastore
    from app.runtime.postgres import PostgresServer

    settings = isolated_settings(tmp_path, {})
    local = PostgresServer(settings)
    url = Airflow(settings).database_url()
    assert (
        url == f"postgresql+psycopg2://airflow:{local.password('airflow')}@127.0.0.1:{settings.postgres_port}/airflow"
    )
    properties = HiveMetastore(settings).database_properties()
    assert (
        properties["javax.jdo.option.ConnectionURL"]
        == f"jdbc:postgresql://127.0.0.1:{settings.postgres_port}/metastore"
    )
    assert properties["javax.jdo.option.ConnectionUserName"] == "metastore"
    assert properties["javax.jdo.option.ConnectionPassword"] == local.password("metastore")
    secrets = local.home / "secrets"
    assert (secrets.stat().st_mode & 0o777) == 0o700
    assert {path.name: path.stat().st_mode & 0o777 for path in secrets.iterdir()} == {
        "airflow": 0o600,
        "metastore": 0o600,
    }
    assert local.password("airflow") != local.password("metastore")
    derby = HiveMetastore(isolated_settings(tmp_path, {"HIVE_METASTORE_DB_URL": "derby"})).database_properties()
    assert derby["javax.jdo.option.ConnectionDriverName"] == "org.apache.derby.jdbc.EmbeddedDriver"
    chosen = "postgresql+psycopg2://a:b@db.example:5432/airflow"
    assert Airflow(isolated_settings(tmp_path, {"AIRFLOW_DATABASE_URL": chosen})).database_url() == chosen


def test_a_database_url_of_another_kind_is_refused_without_its_password(tmp_path: Path) -> None:
    from app.settings import SettingsError

    with pytest.raises(SettingsError) as refused:
        isolated_settings(tmp_path, {"AIRFLOW_DATABASE_URL": "oracle://user:hunter2@db/airflow"})
    assert "AIRFLOW_DATABASE_URL" in str(refused.value) and "hunter2" not in str(refused.value)
    with pytest.raises(SettingsError, match="HIVE_METASTORE_DB_URL"):
        isolated_settings(tmp_path, {"HIVE_METASTORE_DB_URL": "jdbc:mysql://db/metastore"})


def test_a_local_kafka_cluster_has_a_node_per_server_in_one_static_quorum(tmp_path: Path) -> None:
    from app.runtime.kafka_broker import KafkaCluster

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
    """`airflow db migrate` and `airflow pools import` run when the database is new, or another
    Airflow version (an upgraded lock file) or another database was last migrated, not on every
    restart: each takes the CLI's 10 s."""
    import subprocess

    from app.runtime.airflow_server import Airflow

    calls: list[list[str]] = []
    run = subprocess.run

    def airflow_cli(command: list[str], **options: object) -> subprocess.CompletedProcess[str]:
        if not command[0].endswith("/airflow"):
            return run(command, **options)  # type: ignore[call-overload, no-any-return]
        calls.append(command[1:3])
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(subprocess, "run", airflow_cli)
    monkeypatch.setattr(Airflow, "check_database_login", lambda self: None)
    airflow = Airflow(isolated_settings(tmp_path, {}))
    airflow.prepare()
    assert calls == [["db", "migrate"], ["pools", "import"]]
    calls.clear()
    airflow.prepare()
    assert calls == []
    stamp = airflow.home / "migrated-for"
    stamp.write_text(stamp.read_text().replace("3.", "2.", 1))  # as after an upgrade of the lock file
    airflow.prepare()
    assert calls == [["db", "migrate"], ["pools", "import"]]
    calls.clear()
    other = Airflow(isolated_settings(tmp_path, {"AIRFLOW_DATABASE_URL": "postgresql://a:b@db.example/airflow"}))
    other.prepare()
    assert calls == [["db", "migrate"], ["pools", "import"]]


def test_make_airflow_runs_the_real_airflow_command_with_the_runtime_environment(tmp_path: Path) -> None:
    """`make airflow ARGS="..."` (the README's backfill line goes through it): everything after
    `airflow` is Airflow's, run with the home `make up` gives Airflow."""
    from app.settings import REPO_ROOT

    settings = isolated_settings(tmp_path, {})
    shown = run_module(settings, "app.runtime", "airflow", "config", "get-value", "core", "dags_folder", timeout=120)
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert shown.stdout.strip() == str(REPO_ROOT / "dags")


def test_the_airflow_login_shows_a_generated_password_once_and_never_a_chosen_one(tmp_path: Path) -> None:
    from app.runtime.__main__ import airflow_login_hint
    from app.runtime.airflow_server import Airflow

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


@pytest.mark.skipif(os.geteuid() != 0, reason="PostgreSQL runs as `postgres` only when we are root")
def test_as_root_the_cluster_lives_where_the_postgres_user_can_reach_it(tmp_path: Path) -> None:
    from app.runtime.postgres import PostgresServer

    private = tmp_path / "private"  # pytest's folders are closed to other users
    private.mkdir(mode=0o700)
    hidden = PostgresServer(isolated_settings(private / "state", {}))
    assert hidden.data_dir.parent == Path("~postgres").expanduser() / "clickstream"
    assert (hidden.home / "data-location").read_text().strip() == str(hidden.data_dir)
    open_folder = reachable_folder("clickstream-reachable-test-")
    reachable = PostgresServer(isolated_settings(open_folder / "state", {}))
    assert reachable.data_dir == open_folder / "state" / "postgres" / "data"


def test_no_metadata_database_code_for_sqlite_is_left() -> None:
    """Airflow runs on PostgreSQL (or another server): `grep -rn sqlite app dags plugins` finds nothing."""
    from app.settings import REPO_ROOT

    found = [
        f"{path.relative_to(REPO_ROOT)}:{number}"
        for folder in ("app", "dags", "plugins")
        for path in sorted((REPO_ROOT / folder).rglob("*"))
        if path.is_file() and path.suffix in (".py", ".md", ".txt", ".cfg", ".toml", ".json", ".html", ".js")
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), start=1)
        if "sqlite" in line
    ]
    assert found == []


def test_every_service_the_readme_starts_by_name_exists_and_on_demand_ones_stay_off_by_default(
    tmp_path: Path,
) -> None:
    """`python -m app.runtime up <name>` as the README prints it names a known service; HDFS, the
    Spark and Kafka clusters start only when named."""
    import re

    from app.settings import REPO_ROOT

    readme = (REPO_ROOT / "README.md").read_text()
    named = {name for names in re.findall(r"app\.runtime up ([a-z -]+)`", readme) for name in names.split()}
    assert {"hdfs", "spark-cluster", "kafka-cluster"} <= named
    assert named <= set(LocalRuntime.EVERY), named - set(LocalRuntime.EVERY)
    assert "hdfs" not in default_services(tmp_path, {})


def test_with_the_celery_executor_make_up_starts_redis_and_two_named_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.airflow.hostname import WORKER_NAME, worker_hostname
    from app.runtime.airflow_server import Airflow

    assert "redis" not in default_services(tmp_path, {})
    local = Airflow(isolated_settings(tmp_path))
    assert local.environment()["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert not any("celery" in process.name for process in local.processes())

    celery = {"AIRFLOW_EXECUTOR": "CeleryExecutor"}
    assert default_services(tmp_path, celery) == ["kafka", "postgres", "metastore", "spark-history", "redis", "airflow"]
    settings = isolated_settings(tmp_path, celery)
    airflow = Airflow(settings)
    environment = airflow.environment()
    assert environment["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert environment["AIRFLOW__CELERY__BROKER_URL"] == f"redis://127.0.0.1:{settings.redis_port}/0"
    assert environment["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql")
    workers = [process for process in airflow.processes() if "celery" in process.name]
    assert [worker.name for worker in workers] == ["airflow-celery-worker-1", "airflow-celery-worker-2"]
    for number, worker in enumerate(workers, start=1):
        assert worker.env[WORKER_NAME] == f"worker-{number}"
        assert list(worker.command[1:]) == [
            "celery",
            "worker",
            "--celery-hostname",
            f"worker-{number}@%h",
            "--skip-serve-logs",
        ]
    assert len(Airflow(isolated_settings(tmp_path, {**celery, "AIRFLOW_CELERY_WORKERS": "0"})).processes()) == 4
    elsewhere = {**celery, "AIRFLOW_CELERY_BROKER_URL": "redis://host1.example:6379/0"}
    assert Airflow(isolated_settings(tmp_path, elsewhere)).environment()["AIRFLOW__CELERY__BROKER_URL"] == (
        "redis://host1.example:6379/0"
    )
    assert "redis" not in default_services(tmp_path, elsewhere)  # the queue lives on another host

    monkeypatch.delenv(WORKER_NAME, raising=False)
    assert "@" not in worker_hostname()
    monkeypatch.setenv(WORKER_NAME, "worker-2")
    assert worker_hostname().startswith("worker-2@")
