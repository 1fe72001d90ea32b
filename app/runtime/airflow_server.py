"""The Airflow service (API server with the UI, scheduler, DAG processor, triggerer) on PostgreSQL and
its deployment environment (connections, the pools of `app/airflow/pools.py`, the project's settings).
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import os
import secrets
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

from app.airflow.hostname import WORKER_NAME
from app.airflow.pools import POOLS
from app.runtime.postgres import AIRFLOW_DATABASE, PostgresServer, database_login_error
from app.runtime.process import ManagedProcess, ServiceStartError
from app.runtime.service import Health, Service, kept_secret
from app.settings import REPO_ROOT

log = logging.getLogger(__name__)


SIMPLE_AUTH_MANAGER = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"


class Airflow(Service):
    """Airflow 3: api-server (UI and REST API, login required), scheduler, dag-processor, triggerer."""

    name = "airflow"
    start_timeout = 180.0
    port_field = "airflow_api_port"
    components = ("api-server", "scheduler", "dag-processor", "triggerer")

    @property
    def passwords_file(self) -> Path:
        return self.home / "passwords.json"

    def secret(self, name: str) -> str:
        """A random secret kept in the state folder, shared by every component."""
        return kept_secret(self.home / "secrets" / name, 32)

    def environment(self) -> dict[str, str]:
        from app.kafka_io import extra_client_properties, security_config

        s = self.settings
        venv_bin = str(Path(sys.executable).parent)
        return {
            **s.environment(),
            "PATH": f"{venv_bin}:{os.environ.get('PATH', '')}",
            "PYTHONPATH": str(REPO_ROOT),
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO_ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": s.airflow_executor,
            **self.celery_environment(),
            "AIRFLOW__CORE__PARALLELISM": str(s.airflow_parallelism),
            "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": str(s.airflow_parallelism),
            "AIRFLOW__CORE__AUTH_MANAGER": SIMPLE_AUTH_MANAGER,
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{s.airflow_admin_user}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.passwords_file),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{s.airflow_url}/execution/",
            "AIRFLOW__CORE__FERNET_KEY": self.fernet_key(),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.database_url(),
            "AIRFLOW__API__HOST": s.bind_host,
            "AIRFLOW__API__PORT": str(s.airflow_api_port),
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API__BASE_URL": s.airflow_url,
            "AIRFLOW__API__SECRET_KEY": self.secret("api_secret_key"),
            "AIRFLOW__API_AUTH__JWT_SECRET": self.secret("jwt_secret"),
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(s.logs_dir / "airflow"),
            "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
            # a scheduler that died (and the tasks it ran) is noticed in about two minutes, not ten:
            # its queued tasks are reset after 30 s, a task without heartbeat fails (and is retried)
            # after 90 s
            "AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL": "30",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "90",
            "AIRFLOW__TRIGGERER__CAPACITY": "50",
            "AIRFLOW__WEBSERVER__EXPOSE_CONFIG": "False",
            # the login too, when there is one: Airflow masks the password in the UI and in task logs
            "AIRFLOW_CONN_KAFKA_DEFAULT": json.dumps(
                {
                    "conn_type": "kafka",
                    "extra": {
                        "bootstrap.servers": s.kafka_servers,
                        **security_config(s),
                        **extra_client_properties(s),
                    },
                }
            ),
            "AIRFLOW_CONN_SPARK_DEFAULT": json.dumps({"conn_type": "spark", "host": s.spark_master}),
            # a secret, so not among the settings above: the failure notifier reads it (app/airflow/alerts.py)
            **({"ALERT_WEBHOOK_URL": s.alert_webhook_url} if s.alert_webhook_url else {}),
            "no_proxy": "*",
        }

    def celery_environment(self) -> dict[str, str]:
        """With the CeleryExecutor: Redis as the queue, Airflow's database as Celery's result store,
        and the name a task instance records as its host (`app/airflow/hostname.py`)."""
        if self.settings.airflow_executor != "CeleryExecutor":
            return {}
        from app.runtime.redis import Redis

        return {
            "AIRFLOW__CELERY__BROKER_URL": self.settings.airflow_celery_broker_url or Redis(self.settings).url,
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{self.database_url()}",
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(self.settings.airflow_parallelism),
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "app.airflow.hostname.worker_hostname",
        }

    def fernet_key(self) -> str:
        path = self.home / "secrets" / "fernet_key"
        if not path.exists():
            from cryptography.fernet import Fernet

            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            path.write_bytes(Fernet.generate_key())
            path.chmod(0o600)
        return path.read_text().strip()

    def processes(self) -> list[ManagedProcess]:
        airflow = str(Path(sys.executable).parent / "airflow")
        env = self.environment()
        # the log servers that scheduler and triggerer would fork listen on every interface; every
        # component here shares one log folder, so the api-server reads the logs without them
        extra = {"scheduler": ["--skip-serve-logs"], "triggerer": ["--skip-serve-logs"]}
        processes = [
            self.managed(f"airflow-{component}", [airflow, component, *extra.get(component, [])], env)
            for component in self.components
        ]
        if self.settings.airflow_executor == "CeleryExecutor":
            for number in range(1, self.settings.airflow_celery_workers + 1):
                name = f"worker-{number}"
                command = [airflow, "celery", "worker", "--celery-hostname", f"{name}@%h", "--skip-serve-logs"]
                processes.append(self.managed(f"airflow-celery-{name}", command, {**env, WORKER_NAME: name}))
        return processes

    def admin_password(self) -> str:
        """The login's password: from AIRFLOW_ADMIN_PASSWORD, else generated once and kept."""
        if self.settings.airflow_admin_password:
            return self.settings.airflow_admin_password
        if self.passwords_file.exists():
            stored = json.loads(self.passwords_file.read_text())
            if self.settings.airflow_admin_user in stored:
                return str(stored[self.settings.airflow_admin_user])
        return secrets.token_urlsafe(16)

    def database_url(self) -> str:
        """Airflow's metadata database: AIRFLOW_DATABASE_URL, else `airflow` on the local PostgreSQL."""
        return self.settings.airflow_database_url or PostgresServer(self.settings).sqlalchemy_url(AIRFLOW_DATABASE)

    def check_database_login(self) -> None:
        """Log in once before migrating: a bad URL or a refused login is named with its setting."""
        from sqlalchemy import create_engine, text
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError, SQLAlchemyError

        setting = "AIRFLOW_DATABASE_URL" if self.settings.airflow_database_url else "POSTGRES_PORT"
        try:
            url = make_url(self.database_url())
        except ArgumentError as error:
            raise ServiceStartError(f"{setting}: not a database URL ({error})") from None
        where = f"database {url.database} at {url.host}:{url.port or ''}".rstrip(":")
        engine = create_engine(url, pool_pre_ping=False)
        try:
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except SQLAlchemyError as error:
            raise database_login_error(setting, where, getattr(error, "orig", None) or error) from None
        finally:
            engine.dispose()

    def migration_stamp(self) -> str:
        """What a migration was last run for: this Airflow's version and the database (its URL
        without the password; for the local server, also when its cluster was created)."""
        from sqlalchemy.engine import make_url

        database = make_url(self.database_url()).render_as_string(hide_password=True)
        if not self.settings.airflow_database_url:
            cluster = PostgresServer(self.settings).data_dir / "PG_VERSION"
            database += f" cluster {cluster.stat().st_mtime_ns if cluster.exists() else 0}"
        return f"{importlib.metadata.version('apache-airflow')} {database}"

    def prepare(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.passwords_file.write_text(json.dumps({self.settings.airflow_admin_user: self.admin_password()}))
        self.passwords_file.chmod(0o600)
        migrated_for = self.home / "migrated-for"  # the Airflow version and database last migrated
        stamp = self.migration_stamp()
        # `airflow db migrate` and `airflow pools import` take the CLI's 10 to 15 s each even when
        # there is nothing to do: a restart skips both when this Airflow migrated this database
        if migrated_for.exists() and migrated_for.read_text() == stamp:
            return
        self.check_database_login()
        env = {**os.environ, **self.environment()}
        airflow = str(Path(sys.executable).parent / "airflow")
        log.info("airflow: migrating the metadata database (%s)", stamp)
        migrated = subprocess.run(
            [airflow, "db", "migrate"], env=env, cwd=self.home, capture_output=True, text=True, check=False
        )
        if migrated.returncode != 0:
            raise ServiceStartError(f"airflow: `airflow db migrate` failed:\n{migrated.stderr[-3000:]}")
        pools_file = self.home / "pools.json"
        pools_file.write_text(json.dumps(POOLS))
        imported = subprocess.run(
            [airflow, "pools", "import", str(pools_file)],
            env=env,
            cwd=self.home,
            capture_output=True,
            text=True,
            check=False,
        )
        if imported.returncode != 0:
            raise ServiceStartError(f"airflow: creating the pools failed:\n{imported.stderr[-2000:]}")
        migrated_for.write_text(stamp)

    def health(self) -> Health:
        url = f"{self.settings.airflow_url}/api/v2/monitor/health"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - our own loopback URL
                body = json.load(response)
        except (urllib.error.URLError, OSError, ValueError) as error:
            return Health(False, f"{url}: {error}")
        states = {
            part: (body.get(part) or {}).get("status")
            for part in ("metadatabase", "scheduler", "triggerer", "dag_processor")
        }
        unhealthy = [part for part, state in states.items() if state != "healthy"]
        if unhealthy:
            return Health(False, "not healthy: " + ", ".join(f"{p}={states[p]}" for p in unhealthy))
        return Health(True, f"UI {self.settings.airflow_url} (login {self.settings.airflow_admin_user})")
