"""The local Airflow 3: healthy, refuses anonymous access, and creates backfills while others write."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from contextlib import closing
from pathlib import Path

import pytest

from app.airflow.client import AirflowClient
from app.runtime.airflow_server import Airflow
from app.runtime.postgres import PostgresServer
from app.runtime.service import Service
from app.settings import Settings
from tests.conftest import isolated_settings, reachable_folder


def anonymous(settings: Settings) -> AirflowClient:
    return AirflowClient(settings.airflow_url)


@pytest.mark.parametrize("path", ["/api/v2/dags", "/api/v2/config", "/api/v2/connections", "/ui/dags", "/ui/config"])
def test_ui_and_api_refuse_anonymous_requests(airflow: Service, settings: Settings, path: str) -> None:
    status, _ = anonymous(settings).request("GET", path, authenticated=False)
    assert status == 401


def test_login_with_the_configured_password_only(airflow_client: AirflowClient) -> None:
    assert airflow_client.login("not-the-password")[0] == 401
    status, reply = airflow_client.request("GET", "/api/v2/dags")
    assert status == 200
    assert "dags" in reply


def test_listens_on_loopback_only(airflow: Service, settings: Settings) -> None:
    listening = Path("/proc/net/tcp").read_text().splitlines()[1:]
    port_hex = f"{settings.airflow_api_port:04X}"
    local_addresses = {line.split()[1] for line in listening if line.split()[3] == "0A"}
    assert f"0100007F:{port_hex}" in local_addresses
    assert f"00000000:{port_hex}" not in local_addresses


def test_a_backfill_is_created_while_another_process_commits_all_the_time() -> None:
    """`airflow backfill create` on the PostgreSQL `make up` starts, while a writer commits to the
    same database every 2 ms throughout (on SQLite this failed with "database is locked"). A
    private Airflow, migrated but not started, so that no scheduler runs the backfill."""
    settings = isolated_settings(reachable_folder("clickstream-backfill-test-") / "state")
    database = PostgresServer(settings)
    database.start()
    try:
        airflow = Airflow(settings)
        airflow.prepare()  # migrates, as `make up` does
        env = {**os.environ, **airflow.environment()}
        cli = str(Path(sys.executable).parent / "airflow")
        serialized = subprocess.run([cli, "dags", "reserialize"], env=env, capture_output=True, text=True, check=False)
        assert serialized.returncode == 0, serialized.stderr[-3000:]

        stop = threading.Event()
        commits = []

        def commit_all_the_time() -> None:
            with closing(database.connect("airflow")) as connection, connection.cursor() as cursor:
                cursor.execute("CREATE TABLE IF NOT EXISTS test_writer (n INTEGER)")
                while not stop.wait(0.002):
                    cursor.execute("INSERT INTO test_writer VALUES (1)")  # autocommit: one commit each
                    commits.append(1)

        writer = threading.Thread(target=commit_all_the_time)
        writer.start()
        try:
            created = subprocess.run(
                [cli, "backfill", "create", "--dag-id", "clickstream_hourly", "--from-date", "2017-10-01T00:00:00",
                 "--to-date", "2017-10-01T23:00:00", "--reprocess-behavior", "completed"],
                env=env, capture_output=True, text=True, timeout=300, check=False,
            )  # fmt: skip
        finally:
            stop.set()
            writer.join()
        assert created.returncode == 0, created.stderr[-3000:]
        assert len(commits) > 100  # the writer did commit throughout
        with closing(database.connect("airflow")) as connection, connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM dag_run WHERE run_type = 'backfill'")
            assert cursor.fetchone()[0] == 24
    finally:
        database.stop()


def test_a_refused_database_login_is_named_with_its_setting(postgres: Service, settings: Settings) -> None:
    """A wrong password in AIRFLOW_DATABASE_URL or HIVE_METASTORE_DB_PASSWORD stops the start with
    the setting's name and the server's reason, before Airflow's CLI or the metastore's JVM runs."""
    from dataclasses import replace

    from app.runtime.hive_metastore import HiveMetastore
    from app.runtime.process import ServiceStartError

    server = f"127.0.0.1:{settings.postgres_port}"
    wrong = replace(
        settings,
        airflow_database_url=f"postgresql+psycopg2://airflow:not-the-password@{server}/airflow",
        hive_metastore_db_url=f"jdbc:postgresql://{server}/metastore",
        hive_metastore_db_user="metastore",
        hive_metastore_db_password="not-the-password",
    )
    with pytest.raises(ServiceStartError) as airflow_refused:
        Airflow(wrong).check_database_login()
    with pytest.raises(ServiceStartError) as metastore_refused:
        HiveMetastore(wrong).check_database_login()
    for refused, setting in ((airflow_refused, "AIRFLOW_DATABASE_URL"), (metastore_refused, "HIVE_METASTORE_DB_URL")):
        message = str(refused.value)
        assert message.startswith(f"{setting}: cannot log in to database"), message
        assert "password authentication failed" in message
        assert "not-the-password" not in message
