"""The PostgreSQL service that holds Airflow's and the metastore's databases on this machine, and
how a JDBC URL names a PostgreSQL database (`docs/design/databases.md`).
"""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
from contextlib import closing
from functools import cached_property
from pathlib import Path
from typing import Any, NamedTuple

from app.runtime import deps
from app.runtime.process import ManagedProcess, ServiceStartError
from app.runtime.service import Health, Service, kept_secret

log = logging.getLogger(__name__)


class PostgresAddress(NamedTuple):
    """Where a PostgreSQL database is, as a JDBC URL names it."""

    host: str
    port: int
    database: str


def postgres_address(jdbc_url: str) -> PostgresAddress | None:
    """Host, port and database of a `jdbc:postgresql://host[:port]/database` URL, else None."""
    match = re.fullmatch(r"jdbc:postgresql://([^/:?]+)(?::(\d+))?/([^/?]+)(?:\?.*)?", jdbc_url)
    if not match:
        return None
    return PostgresAddress(match.group(1), int(match.group(2) or 5432), match.group(3))


AIRFLOW_DATABASE = "airflow"


METASTORE_DATABASE = "metastore"


POSTGRES_SUPERUSER = "clickstream"


def database_login_error(setting: str, where: str, error: Exception) -> ServiceStartError:
    """A database that refused us, named by the setting that points at it (never its password)."""
    reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return ServiceStartError(f"{setting}: cannot log in to {where}: {reason}")


class PostgresServer(Service):
    """One local PostgreSQL server (Debian's package) holding Airflow's metadata database and the
    Hive Metastore's catalogue: databases `airflow` and `metastore`, each owned by a role of its
    own whose password is generated once and kept in `<state>/postgres/secrets` (mode 600).

    Started by `make up` while either URL (`AIRFLOW_DATABASE_URL`, `HIVE_METASTORE_DB_URL`) is
    empty; listens on the bind host and `POSTGRES_PORT` only (no Unix socket) with password
    logins. Stopped with PostgreSQL's fast shutdown (SIGINT): a checkpoint, then exit, so the next
    start needs no recovery. PostgreSQL refuses to run as root: as root it runs as the package's
    `postgres` user, its cluster in `<state>/postgres/data` when that user can reach the folder,
    else in that user's home (`~postgres/clickstream/<hash of the state folder>`).
    """

    name = "postgres"
    start_timeout = 60.0
    port_field = "postgres_port"
    databases = (AIRFLOW_DATABASE, METASTORE_DATABASE)

    def wanted(self) -> bool:
        """Whether a database of the pipeline lives here (its URL is empty)."""
        return not self.settings.airflow_database_url or not self.settings.hive_metastore_db_url

    def password(self, role: str) -> str:
        """The password of a role (the superuser, or a database's owner): generated once, kept."""
        return kept_secret(self.home / "secrets" / role, 24)

    def sqlalchemy_url(self, database: str) -> str:
        return (
            f"postgresql+psycopg2://{database}:{self.password(database)}@{self.settings.bind_host}:"
            f"{self.settings.postgres_port}/{database}"
        )

    def jdbc_url(self, database: str) -> str:
        return f"jdbc:postgresql://{self.settings.bind_host}:{self.settings.postgres_port}/{database}"

    def connect(self, database: str = "postgres") -> Any:
        """A connection as the superuser (autocommit), for setting up and checking the databases."""
        import psycopg2

        connection = psycopg2.connect(
            host=self.settings.bind_host,
            port=self.settings.postgres_port,
            dbname=database,
            user=POSTGRES_SUPERUSER,
            password=self.password(POSTGRES_SUPERUSER),
            connect_timeout=5,
        )
        connection.autocommit = True
        return connection

    def _as_postgres_user(self) -> list[str]:
        """The command prefix that drops root for PostgreSQL's `postgres` user; empty for others."""
        if os.geteuid() != 0:
            return []
        return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--"]

    @cached_property
    def data_dir(self) -> Path:
        """The cluster's folder: in the state folder, unless root runs us and the `postgres` user
        cannot reach it (then in that user's home; `<state>/postgres/data-location` says where)."""
        here = self.home / "data"
        prefix = self._as_postgres_user()
        if not prefix or (here / "PG_VERSION").exists():
            return here
        self.home.mkdir(parents=True, exist_ok=True)
        if subprocess.run([*prefix, "test", "-x", str(self.home)], check=False).returncode == 0:
            return here
        import hashlib
        import pwd

        digest = hashlib.sha256(str(self.settings.state_dir.resolve()).encode()).hexdigest()[:16]
        elsewhere = Path(pwd.getpwnam("postgres").pw_dir) / "clickstream" / digest
        (self.home / "data-location").write_text(f"{elsewhere}\n")
        return elsewhere

    def processes(self) -> list[ManagedProcess]:
        command = [
            *self._as_postgres_user(),
            str(deps.postgres_bin("postgres")),
            *("-D", str(self.data_dir), "-p", str(self.settings.postgres_port)),
            *("-c", f"listen_addresses={self.settings.bind_host}", "-c", "unix_socket_directories="),
            # Airflow's four components keep pools of connections, and each task process its own
            *("-c", "max_connections=200"),
        ]
        # SIGINT is PostgreSQL's fast shutdown (clean: no recovery on the next start); SIGTERM
        # would wait for every client to disconnect
        return [self.managed("postgres", command, stop_signal=signal.SIGINT)]

    def prepare(self) -> None:
        data = self.data_dir
        if (data / "PG_VERSION").exists():
            return
        prefix = self._as_postgres_user()
        data.mkdir(parents=True, exist_ok=True, mode=0o700)
        password_file = data.parent / "initdb-password"
        password_file.write_text(self.password(POSTGRES_SUPERUSER) + "\n")
        password_file.chmod(0o600)
        if prefix:
            import shutil

            for path in {data.parent, data, password_file}:
                shutil.chown(path, "postgres", "postgres")
        try:
            initialised = subprocess.run(
                [
                    *prefix,
                    str(deps.postgres_bin("initdb")),
                    *("-D", str(data), "-U", POSTGRES_SUPERUSER, f"--pwfile={password_file}"),
                    *("--auth=scram-sha-256", "--encoding=UTF8", "--locale=C"),
                ],
                capture_output=True,
                text=True,
                check=False,
            )
        finally:
            password_file.unlink(missing_ok=True)
        if initialised.returncode != 0:
            raise ServiceStartError(f"postgres: initdb failed:\n{initialised.stderr[-2000:]}")
        log.info("postgres: created a PostgreSQL cluster in %s", data)

    def start(self) -> None:
        super().start()
        self.create_databases()

    def create_databases(self) -> None:
        """Each database with its owner role, whose password is the one kept here (set again each
        start, so a restored cluster takes the kept passwords). Missing ones only are created."""
        from psycopg2 import sql

        with closing(self.connect()) as connection, connection.cursor() as cursor:
            for database in self.databases:
                cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (database,))
                verb = "ALTER" if cursor.fetchone() else "CREATE"
                cursor.execute(
                    sql.SQL(verb + " ROLE {} LOGIN PASSWORD %s").format(sql.Identifier(database)),
                    (self.password(database),),
                )
                cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
                if cursor.fetchone() is None:
                    cursor.execute(sql.SQL("CREATE DATABASE {0} OWNER {0}").format(sql.Identifier(database)))
                    log.info("postgres: created database %s", database)

    def health(self) -> Health:
        try:
            with closing(self.connect()) as connection, connection.cursor() as cursor:
                cursor.execute("SHOW server_version")
                version = str(cursor.fetchone()[0]).split()[0]
                cursor.execute(
                    "SELECT datname FROM pg_database WHERE datname = ANY(%s) ORDER BY 1", (list(self.databases),)
                )
                present = [str(row[0]) for row in cursor.fetchall()]
        except Exception as error:  # noqa: BLE001 - any failure to answer is "not healthy", with its reason
            return Health(False, f"{self.settings.bind_host}:{self.settings.postgres_port}: {error}".strip())
        return Health(
            True,
            f"PostgreSQL {version} on {self.settings.bind_host}:{self.settings.postgres_port}, databases "
            + (", ".join(present) or "(none yet)"),
        )


def properties_url(properties: dict[str, str]) -> str:
    return properties["javax.jdo.option.ConnectionURL"]
