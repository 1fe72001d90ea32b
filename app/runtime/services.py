"""The local services: a Kafka broker (KRaft), PostgreSQL, the Hive Metastore and Airflow, started and checked.

Each service writes its configuration under the state folder, refuses to start on a taken port
(naming the variable that moves it), waits until it is really healthy, and stops by pid.
`LocalRuntime` runs them in order; `python -m app.runtime up|down|status` is its command line.
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import os
import re
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar
from xml.sax.saxutils import escape

from app.runtime import deps
from app.runtime.process import (
    ManagedProcess,
    ServiceStartError,
    ensure_port_free,
    port_accepts,
    wait_until,
)
from app.settings import REPO_ROOT, SPECS, Settings

log = logging.getLogger(__name__)


def kept_secret(path: Path, random_bytes: int) -> str:
    """A random secret generated once into `path` (mode 600, in a folder of mode 700), then read."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.write_text(secrets.token_urlsafe(random_bytes))
        path.chmod(0o600)
    return path.read_text().strip()


@dataclass(frozen=True)
class Health:
    healthy: bool
    detail: str


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    running: bool
    pids: tuple[int, ...]
    ports: tuple[int, ...]
    health: Health


class Service:
    """A local service: some processes and the ports they own."""

    name = "service"
    start_timeout = 120.0

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.home = settings.state_dir / self.name

    @property
    def run_dir(self) -> Path:
        return self.settings.state_dir / "run"

    def ports(self) -> list[tuple[int, str]]:
        """(port, variable that sets it) pairs this service listens on."""
        raise NotImplementedError

    def processes(self) -> list[ManagedProcess]:
        raise NotImplementedError

    def prepare(self) -> None:
        """Write configuration and do one-time initialisation before the first start."""

    def health(self) -> Health:
        raise NotImplementedError

    def managed(
        self,
        name: str,
        command: list[str],
        env: dict[str, str] | None = None,
        stop_signal: signal.Signals = signal.SIGTERM,
    ) -> ManagedProcess:
        return ManagedProcess(
            name=name,
            command=command,
            run_dir=self.run_dir,
            log_dir=self.settings.logs_dir,
            env=env or {},
            cwd=self.home,
            stop_signal=stop_signal,
        )

    def start(self) -> None:
        processes = self.processes()
        if all(process.is_running() for process in processes):
            log.info("%s: already running", self.name)
            return
        if any(process.is_running() for process in processes):
            # half up (a component crashed): restart the whole service cleanly
            self.stop()
        for port, variable in self.ports():
            ensure_port_free(self.settings.bind_host, port, variable, self.name)
        self.home.mkdir(parents=True, exist_ok=True)
        self.prepare()
        for process in processes:
            process.start()
        wait_until(lambda: self.health().healthy, processes[0], self.start_timeout, "healthy")
        for process in processes:
            if not process.is_running():
                raise process.failure("exited during start-up")
        log.info("%s: healthy", self.name)

    def stop(self) -> None:
        for process in reversed(self.processes()):
            process.stop()

    def run_in_foreground(self) -> None:
        """Replace this process by the service's (one-process services only): for containers,
        where the container's runtime supervises it. Logs go to standard output."""
        processes = self.processes()
        if len(processes) != 1:
            raise ValueError(
                f"{self.name} has {len(processes)} processes; run them one by one (e.g. airflow's own CLI)"
            )
        self.home.mkdir(parents=True, exist_ok=True)
        self.prepare()
        process = processes[0]
        folder = process.cwd or self.home
        folder.mkdir(parents=True, exist_ok=True)
        os.chdir(folder)
        command = list(process.command)
        os.execvpe(command[0], command, {**os.environ, **process.env})  # noqa: S606

    def status(self) -> ServiceStatus:
        pids = tuple(pid for process in self.processes() if (pid := process.read_pid()) is not None)
        running = len(pids) == len(self.processes())
        health = self.health() if pids else Health(False, "not running")
        return ServiceStatus(self.name, running, pids, tuple(port for port, _ in self.ports()), health)


def _java_service_flags(settings: Settings, home: Path, heap: str) -> list[str]:
    tmp = home / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    return [
        deps.java_executable(),
        f"-Xmx{heap}",
        f"-Xms{heap}",
        "-XX:+UseG1GC",
        f"-Djava.io.tmpdir={tmp}",
        f"-Dclickstream.home={home}",
    ]


@dataclass(frozen=True)
class KraftNode:
    """One Kafka process: broker and KRaft controller in one JVM."""

    node_id: int
    port: int
    controller_port: int
    home: Path

    @property
    def properties_file(self) -> Path:
        return self.home / "server.properties"

    @property
    def data_dir(self) -> Path:
        return self.home / "data"


class KafkaBroker(Service):
    """Apache Kafka 4 in KRaft combined mode (broker and controller in one JVM), single node."""

    name = "kafka"
    start_timeout = 90.0
    # internal topics' replication; a cluster raises these
    replicas, min_insync = 1, 1

    def nodes(self) -> list[KraftNode]:
        return [KraftNode(1, self.settings.kafka_port, self.settings.kafka_controller_port, self.home)]

    def ports(self) -> list[tuple[int, str]]:
        return [
            pair
            for node in self.nodes()
            for pair in ((node.port, "KAFKA_SERVERS"), (node.controller_port, "KAFKA_CONTROLLER_PORT"))
        ]

    @property
    def properties_file(self) -> Path:
        return self.nodes()[0].properties_file

    def quorum(self) -> dict[str, str]:
        """How the controllers find each other: one node's own dynamic quorum."""
        node = self.nodes()[0]
        return {"controller.quorum.bootstrap.servers": f"{self.settings.bind_host}:{node.controller_port}"}

    def server_properties(self, node: KraftNode | None = None) -> dict[str, str]:
        node = node or self.nodes()[0]
        host, s = self.settings.bind_host, self.settings
        protocol = s.kafka_security_protocol  # of the client listener, also used between brokers
        listeners = f"{protocol}://{host}:{node.port},CONTROLLER://{host}:{node.controller_port}"
        replicas, min_insync = str(self.replicas), str(self.min_insync)
        return {
            "process.roles": "broker,controller",
            "node.id": str(node.node_id),
            **self.quorum(),
            "listeners": listeners,
            "advertised.listeners": listeners,
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": protocol,
            "listener.security.protocol.map": f"CONTROLLER:PLAINTEXT,{protocol}:{protocol}",
            **self.security_properties(),
            "log.dirs": str(node.data_dir),
            "num.partitions": "3",
            "default.replication.factor": replicas,
            "min.insync.replicas": min_insync,
            "offsets.topic.replication.factor": replicas,
            "transaction.state.log.replication.factor": replicas,
            "transaction.state.log.min.isr": min_insync,
            "share.coordinator.state.topic.replication.factor": replicas,
            "share.coordinator.state.topic.min.isr": min_insync,
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "false",
            "log.retention.hours": "-1",
        }

    def security_properties(self) -> dict[str, str]:
        """SCRAM login (and TLS) on the client listener, from the same settings the clients use.

        The broker logs in to itself as `KAFKA_SASL_USERNAME` (a super user). The controller
        listener stays PLAINTEXT on the bind host: KRaft controllers cannot use SCRAM, since its
        credentials live in the metadata they serve.
        """
        s = self.settings
        protocol = s.kafka_security_protocol
        if protocol == "PLAINTEXT":
            return {}
        from app.kafka_io import jaas_config, security_config

        security_config(s)  # refuses a SASL protocol without user and password, naming the settings
        listener = protocol.lower()
        mechanism = s.kafka_sasl_mechanism
        properties = {
            "sasl.enabled.mechanisms": mechanism,
            "sasl.mechanism.inter.broker.protocol": mechanism,
            f"listener.name.{listener}.{mechanism.lower()}.sasl.jaas.config": jaas_config(
                s.kafka_sasl_username, s.kafka_sasl_password
            ),
            "super.users": f"User:{s.kafka_sasl_username}",
        }
        if protocol == "SASL_SSL":
            if not s.kafka_broker_ssl_certificate or not s.kafka_broker_ssl_key:
                raise ServiceStartError(
                    "kafka: KAFKA_SECURITY_PROTOCOL=SASL_SSL needs KAFKA_BROKER_SSL_CERTIFICATE and "
                    "KAFKA_BROKER_SSL_KEY (PEM files) for the local broker"
                )
            properties |= {
                "ssl.keystore.type": "PEM",
                "ssl.keystore.location": str(self.keystore_file),
            }
            if s.kafka_ssl_ca_location:  # the broker connects to itself, and must trust its certificate
                properties |= {"ssl.truststore.type": "PEM", "ssl.truststore.location": s.kafka_ssl_ca_location}
        return properties

    @property
    def keystore_file(self) -> Path:
        return self.home / "keystore.pem"

    def _kafka_java(self) -> list[str]:
        log4j = self.home / "log4j2.properties"
        return [
            *_java_service_flags(self.settings, self.home, self.settings.kafka_broker_heap),
            f"-Dkafka.logs.dir={self.settings.logs_dir}",
            f"-Dlog4j2.configurationFile={log4j}",
            "-cp",
            f"{deps.KAFKA_JARS_DIR}/*",
        ]

    def process_name(self, node: KraftNode) -> str:
        return self.name

    def processes(self) -> list[ManagedProcess]:
        return [
            self.managed(self.process_name(node), [*self._kafka_java(), "kafka.Kafka", str(node.properties_file)])
            for node in self.nodes()
        ]

    def prepare(self) -> None:
        deps.jars_in(deps.KAFKA_JARS_DIR)
        s = self.settings
        for node in self.nodes():
            node.home.mkdir(parents=True, exist_ok=True)
            properties = self.server_properties(node)
            node.properties_file.write_text("".join(f"{key}={value}\n" for key, value in properties.items()))
            node.properties_file.chmod(0o600)  # it may hold the broker's password
        if s.kafka_security_protocol == "SASL_SSL":
            # one PEM file with the (unencrypted PKCS#8) key and the certificate chain
            key, chain = Path(s.kafka_broker_ssl_key).read_text(), Path(s.kafka_broker_ssl_certificate).read_text()
            self.keystore_file.touch(mode=0o600)
            self.keystore_file.write_text(key.rstrip("\n") + "\n" + chain)
        (self.home / "log4j2.properties").write_text(_LOG4J2_CONSOLE.format(level="INFO"))
        users_file = self.home / "scram-users"  # the SCRAM users the data folders were formatted with
        sasl = s.kafka_security_protocol != "PLAINTEXT"
        if all((node.data_dir / "meta.properties").exists() for node in self.nodes()):
            users = users_file.read_text().split() if users_file.exists() else []
            if sasl and s.kafka_sasl_username not in users:
                raise ServiceStartError(
                    f"{self.name}: the broker's data in {self.home} was made without the SASL user "
                    f"KAFKA_SASL_USERNAME={s.kafka_sasl_username}; add it with kafka-configs "
                    "(--alter --add-config 'SCRAM-...') while it runs PLAINTEXT, or delete that folder (and its topics)"
                )
            return
        cluster_id = (
            subprocess.run(
                [*self._kafka_java(), "kafka.tools.StorageTool", "random-uuid"],
                capture_output=True,
                text=True,
                check=True,
            )
            .stdout.strip()
            .splitlines()[-1]
        )
        for node in self.nodes():
            formatted = subprocess.run(
                [
                    *self._kafka_java(),
                    "kafka.tools.StorageTool",
                    "format",
                    *("-t", cluster_id, "-c", str(node.properties_file)),
                    *self.format_flags(),
                    "--ignore-formatted",
                    *self._scram_user_arguments(),
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            if formatted.returncode != 0:
                raise ServiceStartError(f"{self.name}: formatting {node.data_dir} failed:\n{formatted.stderr[-2000:]}")
        users_file.write_text(s.kafka_sasl_username + "\n" if sasl else "")
        log.info("%s: formatted a new KRaft cluster %s in %s", self.name, cluster_id, self.home)

    def format_flags(self) -> list[str]:
        return ["--standalone"]  # a quorum of this one controller

    def _scram_user_arguments(self) -> list[str]:
        """The SCRAM user that `kafka-storage format` writes into a new cluster's metadata."""
        s = self.settings
        if s.kafka_security_protocol == "PLAINTEXT":
            return []
        return [
            "--add-scram",
            f"{s.kafka_sasl_mechanism}=[name={s.kafka_sasl_username},password={s.kafka_sasl_password}]",
        ]

    def health(self) -> Health:
        from confluent_kafka.admin import AdminClient

        from app.kafka_io import client_config, unreachable

        for node in self.nodes():
            if not port_accepts(self.settings.bind_host, node.port):
                return Health(False, f"port {node.port} not accepting connections")
        config = client_config(self.settings)
        admin = AdminClient(config)
        try:
            metadata = admin.list_topics(timeout=5)
        except Exception as error:  # noqa: BLE001 - any client error means "not healthy yet"
            return Health(False, f"metadata request failed: {unreachable(self.settings, config, error, admin)}")
        if len(metadata.brokers) < len(self.nodes()):
            return Health(False, f"{len(metadata.brokers)} of {len(self.nodes())} brokers registered")
        return Health(True, f"{len(metadata.brokers)} broker(s), {len(metadata.topics)} topic(s)")


class KafkaCluster(KafkaBroker):
    """A Kafka cluster on this machine, for trying replication and broker failures: one KRaft node
    (broker and controller) per `KAFKA_SERVERS` entry, each a voter of a static controller quorum;
    node n's controller listens on `KAFKA_CONTROLLER_PORT` + n - 1. Internal topics are replicated
    3 times with `min.insync.replicas` 2 (fewer with fewer nodes). Started on demand:
    `KAFKA_SERVERS=127.0.0.1:9092,127.0.0.1:9094,127.0.0.1:9096 python -m app.runtime up kafka-cluster`.
    """

    name = "kafka-cluster"
    start_timeout = 150.0

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        count = len(self.nodes())
        self.replicas, self.min_insync = min(3, count), min(2, count)

    def nodes(self) -> list[KraftNode]:
        nodes = []
        for number, entry in enumerate(self.settings.kafka_servers.split(","), start=1):
            host, _, port = entry.strip().rpartition(":")
            if host not in (self.settings.bind_host, "localhost"):
                raise ServiceStartError(
                    f"kafka-cluster: KAFKA_SERVERS entry {entry!r} is not on this machine ({self.settings.bind_host})"
                )
            controller = self.settings.kafka_controller_port + number - 1
            nodes.append(KraftNode(number, int(port), controller, self.home / f"node-{number}"))
        return nodes

    def quorum(self) -> dict[str, str]:
        host = self.settings.bind_host
        voters = ",".join(f"{node.node_id}@{host}:{node.controller_port}" for node in self.nodes())
        return {"controller.quorum.voters": voters}

    def format_flags(self) -> list[str]:
        return []  # the static quorum is in each node's properties

    def process_name(self, node: KraftNode) -> str:
        return f"kafka-node-{node.node_id}"


@dataclass(frozen=True)
class PostgresAddress:
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
    databases = (AIRFLOW_DATABASE, METASTORE_DATABASE)

    def wanted(self) -> bool:
        """Whether a database of the pipeline lives here (its URL is empty)."""
        return not self.settings.airflow_database_url or not self.settings.hive_metastore_db_url

    def ports(self) -> list[tuple[int, str]]:
        return [(self.settings.postgres_port, "POSTGRES_PORT")]

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


class HiveMetastore(Service):
    """The Hive 2.3 Metastore thrift service from pyspark's jars, Derby-backed, on one address."""

    name = "metastore"
    start_timeout = 120.0

    def ports(self) -> list[tuple[int, str]]:
        return [(self.settings.hive_metastore_port, "HIVE_METASTORE_PORT")]

    @property
    def conf_dir(self) -> Path:
        return self.home / "conf"

    def hive_site(self) -> dict[str, str]:
        scratch = self.home / "scratch"
        return {
            **self.database_properties(),
            "datanucleus.schema.autoCreateAll": "true",
            "hive.metastore.schema.verification": "false",
            "hive.metastore.warehouse.dir": str(self.settings.hive_warehouse_dir),
            "hive.exec.scratchdir": str(scratch),
            "hive.exec.local.scratchdir": str(scratch),
            "hive.downloaded.resources.dir": str(self.home / "resources"),
            "hive.metastore.event.db.notification.api.auth": "false",
            "hive.metastore.server.min.threads": "4",
            "hive.metastore.server.max.threads": "64",
        }

    def database_properties(self) -> dict[str, str]:
        """The catalogue's database: `metastore` on the local PostgreSQL (HIVE_METASTORE_DB_URL
        empty), another PostgreSQL (its JDBC URL), or Derby in the state folder (`derby`)."""
        url = self.settings.hive_metastore_db_url
        if url == "derby" or url.startswith("jdbc:derby:"):
            return {
                "javax.jdo.option.ConnectionURL": url
                if url != "derby"
                else f"jdbc:derby:;databaseName={self.home / 'metastore_db'};create=true",
                "javax.jdo.option.ConnectionDriverName": "org.apache.derby.jdbc.EmbeddedDriver",
            }
        if not url:
            local = PostgresServer(self.settings)
            url, user, password = (
                local.jdbc_url(METASTORE_DATABASE),
                METASTORE_DATABASE,
                local.password(METASTORE_DATABASE),
            )
        else:
            user, password = self.settings.hive_metastore_db_user, self.settings.hive_metastore_db_password
        return {
            "javax.jdo.option.ConnectionURL": url,
            "javax.jdo.option.ConnectionDriverName": "org.postgresql.Driver",
            "javax.jdo.option.ConnectionUserName": user,
            "javax.jdo.option.ConnectionPassword": password,
        }

    def check_database_login(self) -> None:
        """Log in to the catalogue's PostgreSQL once before the JVM starts: a bad URL or a refused
        login is named with its setting, not buried in the metastore's log."""
        import psycopg2

        properties = self.database_properties()
        address = postgres_address(properties["javax.jdo.option.ConnectionURL"])
        if address is None:
            return  # Derby
        setting = "HIVE_METASTORE_DB_URL" if self.settings.hive_metastore_db_url else "POSTGRES_PORT"
        try:
            psycopg2.connect(
                host=address.host,
                port=address.port,
                dbname=address.database,
                user=properties["javax.jdo.option.ConnectionUserName"],
                password=properties["javax.jdo.option.ConnectionPassword"],
                connect_timeout=10,
            ).close()
        except psycopg2.Error as error:
            where = f"database {address.database} at {address.host}:{address.port}"
            raise database_login_error(setting, where, error) from None

    def processes(self) -> list[ManagedProcess]:
        jars = [f"{deps.spark_home() / 'jars'}/*", f"{deps.METASTORE_DB_JARS_DIR}/*"]
        classpath = ":".join([str(self.conf_dir), *jars, str(deps.METASTORE_CLASSES_DIR)])
        command = [
            *_java_service_flags(self.settings, self.home, self.settings.hive_metastore_heap),
            "-Dlog4j2.contextSelector=org.apache.logging.log4j.core.selector.ClassLoaderContextSelector",
            f"-Dlog4j.configurationFile={self.conf_dir / 'log4j2.properties'}",
            f"-Dderby.system.home={self.home}",
            "-cp",
            classpath,
            "clickstream.LoopbackMetastore",
            self.settings.bind_host,
            str(self.settings.hive_metastore_port),
        ]
        return [self.managed("metastore", command)]

    def prepare(self) -> None:
        if not (deps.METASTORE_CLASSES_DIR / "clickstream" / "LoopbackMetastore.class").exists():
            raise deps.MissingDependencyError(f"the metastore launcher is not compiled; {deps.SETUP_HINT}")
        self.conf_dir.mkdir(parents=True, exist_ok=True)
        self.settings.hive_warehouse_dir.mkdir(parents=True, exist_ok=True)
        site = self.conf_dir / "hive-site.xml"
        site.write_text(hadoop_xml(self.hive_site()))
        site.chmod(0o600)  # it may hold the database password
        (self.conf_dir / "log4j2.properties").write_text(_LOG4J2_CONSOLE.format(level="INFO"))
        if "org.postgresql.Driver" in self.database_properties().values():
            self.check_database_login()
            self._create_schema()

    def _create_schema(self) -> None:
        """Create the catalogue's tables in PostgreSQL before the metastore serves (missing ones only).

        Left to the metastore, DataNucleus creates a table the first time it is needed, on a second
        connection, while the request's transaction holds locks on the tables it references: the
        first CREATE TABLE of a partitioned table then waits forever on PostgreSQL. DataNucleus's
        SchemaTool creates them all at once, from the metastore's own mapping (`package.jdo`).
        """
        import zipfile

        jars = deps.spark_home() / "jars"
        metastore_jar = next(iter(sorted(jars.glob("hive-metastore-*.jar"))), None)
        if metastore_jar is None:
            raise deps.MissingDependencyError(f"no hive-metastore jar in {jars}; {deps.SETUP_HINT}")
        mapping = self.conf_dir / "package.jdo"
        with zipfile.ZipFile(metastore_jar) as jar:
            mapping.write_bytes(jar.read("package.jdo"))
        properties = self.conf_dir / "schema.properties"
        properties.write_text(
            "".join(
                f"{key}={value}\n"
                for key, value in {
                    **self.database_properties(),
                    "datanucleus.schema.autoCreateAll": "true",
                    "datanucleus.identifierFactory": "datanucleus1",  # the metastore's naming of columns
                    "datanucleus.rdbms.useLegacyNativeValueStrategy": "true",
                }.items()
            )
        )
        properties.chmod(0o600)  # it holds the database password
        classpath = ":".join([f"{jars}/*", f"{deps.METASTORE_DB_JARS_DIR}/*"])
        created = subprocess.run(
            [
                deps.java_executable(),
                "-cp",
                classpath,
                "org.datanucleus.store.schema.SchemaTool",
                *("-create", "-api", "JDO", "-props", str(properties), str(mapping)),
            ],
            cwd=self.conf_dir,
            capture_output=True,
            text=True,
            check=False,
        )
        if created.returncode != 0 or "completed successfully" not in created.stdout:
            raise ServiceStartError(
                f"metastore: creating its tables in {properties_url(self.database_properties())} failed:\n"
                f"{(created.stdout + created.stderr)[-3000:]}"
            )
        log.info("metastore: catalogue tables present in %s", properties_url(self.database_properties()))

    def health(self) -> Health:
        port = self.settings.hive_metastore_port
        if port_accepts(self.settings.bind_host, port):
            return Health(True, f"thrift on {self.settings.hive_metastore_uri}")
        return Health(False, f"port {port} not accepting connections")


class SparkHistoryServer(Service):
    """The Spark History Server: the Spark UI of every job the project ran or runs (from event logs)."""

    name = "spark-history"
    start_timeout = 90.0

    def ports(self) -> list[tuple[int, str]]:
        return [(self.settings.spark_history_port, "SPARK_HISTORY_PORT")]

    @property
    def properties_file(self) -> Path:
        return self.home / "history.properties"

    def history_properties(self) -> dict[str, str]:
        from app.spark_session import spark_event_log_dir

        return {
            "spark.history.fs.logDirectory": f"file://{spark_event_log_dir(self.settings)}",
            "spark.history.ui.port": str(self.settings.spark_history_port),
            "spark.history.fs.update.interval": "5s",
            "spark.history.fs.cleaner.enabled": "true",
            "spark.history.fs.cleaner.maxAge": "7d",
            "spark.history.retainedApplications": "20",
        }

    def processes(self) -> list[ManagedProcess]:
        command = [
            str(deps.spark_home() / "bin" / "spark-class"),
            "org.apache.spark.deploy.history.HistoryServer",
            "--properties-file",
            str(self.properties_file),
        ]
        environment = {
            "SPARK_HOME": str(deps.spark_home()),
            "SPARK_LOCAL_IP": self.settings.bind_host,  # its UI binds here, not 0.0.0.0
            "SPARK_DAEMON_MEMORY": "384m",
        }
        return [self.managed("spark-history", command, environment)]

    def prepare(self) -> None:
        properties = self.history_properties()
        self.properties_file.write_text("".join(f"{key}={value}\n" for key, value in properties.items()))

    def health(self) -> Health:
        url = self.settings.spark_history_url
        try:
            with urllib.request.urlopen(f"{url}/api/v1/version", timeout=5) as response:  # noqa: S310 - loopback
                version = json.load(response).get("spark", "?")
        except (urllib.error.URLError, OSError, ValueError) as error:
            return Health(False, f"{url}: {error}")
        return Health(True, f"Spark UI of every job: {url} (Spark {version})")


class SparkCluster(Service):
    """A Spark standalone cluster from pyspark's own Spark: a master at `SPARK_MASTER_URL`
    (spark://<bind host>:<port>) and `SPARK_CLUSTER_WORKERS` workers, all on the bind host.

    Started on demand (`python -m app.runtime up spark-cluster`); the jobs use it when
    `SPARK_MASTER_URL` names it. The same jobs run on any other standalone cluster the same way.
    """

    name = "spark-cluster"
    start_timeout = 120.0

    def master_port(self) -> int | None:
        """The master's port when SPARK_MASTER_URL names a master on this machine, else None."""
        master = self.settings.spark_master
        host, _, port = master.removeprefix("spark://").partition(":")
        if not master.startswith("spark://") or host not in (self.settings.bind_host, "localhost") or not port:
            return None
        return int(port)

    def ports(self) -> list[tuple[int, str]]:
        port = self.master_port()
        return [(port, "SPARK_MASTER_URL")] if port else []

    def start(self) -> None:
        if self.master_port() is None:
            raise ServiceStartError(
                f"spark-cluster: SPARK_MASTER_URL={self.settings.spark_master} does not name a master on this "
                f"machine; set it to spark://{self.settings.bind_host}:7077 to run the jobs on the local cluster"
            )
        super().start()

    def processes(self) -> list[ManagedProcess]:
        spark_class = str(deps.spark_home() / "bin" / "spark-class")
        host = self.settings.bind_host
        environment = {
            "SPARK_HOME": str(deps.spark_home()),
            "SPARK_LOCAL_IP": host,
            "SPARK_DAEMON_MEMORY": "384m",
            "SPARK_WORKER_DIR": str(self.home / "work"),
            "SPARK_LOCAL_DIRS": str(self.home / "local"),
        }
        master = self.managed(
            "spark-master",
            # web UI on a free port: the Spark UI of a job running here keeps SPARK_UI_PORT
            [
                spark_class,
                "org.apache.spark.deploy.master.Master",
                "--host",
                host,
                "--port",
                str(self.master_port() or 7077),
                "--webui-port",
                "0",
            ],
            environment,
        )
        workers = [
            self.managed(
                f"spark-worker-{number}",
                [
                    spark_class,
                    "org.apache.spark.deploy.worker.Worker",
                    "--host",
                    host,
                    "--webui-port",
                    "0",
                    "--memory",
                    self.settings.spark_cluster_worker_memory,
                    self.settings.spark_master,
                ],
                environment,
            )
            for number in range(1, self.settings.spark_cluster_workers + 1)
        ]
        return [master, *workers]

    def prepare(self) -> None:
        for folder in ("work", "local"):
            (self.home / folder).mkdir(parents=True, exist_ok=True)

    def health(self) -> Health:
        """Healthy when the master accepts connections and every worker has registered with it."""
        port = self.master_port() or 7077
        if not port_accepts(self.settings.bind_host, port):
            return Health(False, f"master port {port} not accepting connections")
        registered = sum(1 for line in self._master_log_lines() if "Registering worker" in line)
        wanted = self.settings.spark_cluster_workers
        if registered < wanted:
            return Health(False, f"{registered} of {wanted} worker(s) registered")
        return Health(True, f"master {self.settings.spark_master}, {wanted} worker(s)")

    def _master_log_lines(self) -> list[str]:
        log_file = self.settings.logs_dir / "spark-master.log"
        return log_file.read_text(errors="replace").splitlines() if log_file.exists() else []


class SparkThriftServer(Service):
    """The Spark Thrift (JDBC/ODBC) server on the shared metastore, for SQL on the Hive tables.

    Started by `make sql` (not by `make up`: it is one more Spark driver); `make down` stops it.
    No authentication: it listens on the bind host (loopback) only.
    """

    name = "sql"
    start_timeout = 180.0

    def ports(self) -> list[tuple[int, str]]:
        return [(self.settings.spark_thrift_port, "SPARK_THRIFT_PORT")]

    def processes(self) -> list[ManagedProcess]:
        from app.spark_session import spark_conf, spark_environment

        conf = {**spark_conf(self.settings), "spark.ui.port": "0"}  # any free port: job UIs keep theirs
        command = [
            str(deps.spark_home() / "bin" / "spark-submit"),
            "--class",
            "org.apache.spark.sql.hive.thriftserver.HiveThriftServer2",
            "--name",
            "clickstream-sql",
        ]
        for key, value in conf.items():
            command += ["--conf", f"{key}={value}"]
        command += [
            "spark-internal",
            "--hiveconf",
            f"hive.server2.thrift.bind.host={self.settings.bind_host}",
            "--hiveconf",
            f"hive.server2.thrift.port={self.settings.spark_thrift_port}",
        ]
        return [self.managed("sql", command, spark_environment(self.settings))]

    def prepare(self) -> None:
        for folder in ("tmp", "local", "scratch"):
            (self.settings.state_dir / "spark" / folder).mkdir(parents=True, exist_ok=True)

    def health(self) -> Health:
        port = self.settings.spark_thrift_port
        if port_accepts(self.settings.bind_host, port):
            return Health(True, f"JDBC {self.settings.spark_thrift_jdbc_url} (make sql)")
        return Health(False, f"port {port} not accepting connections")


SPARK_POOL = "clickstream_spark"
PUBLISH_POOL = "clickstream_publish"
SIMPLE_AUTH_MANAGER = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"


class Airflow(Service):
    """Airflow 3: api-server (UI and REST API, login required), scheduler, dag-processor, triggerer."""

    name = "airflow"
    start_timeout = 180.0
    components = ("api-server", "scheduler", "dag-processor", "triggerer")

    def ports(self) -> list[tuple[int, str]]:
        return [(self.settings.airflow_api_port, "AIRFLOW_API_PORT")]

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
            **settings_environment(s),
            "PATH": f"{venv_bin}:{os.environ.get('PATH', '')}",
            "PYTHONPATH": str(REPO_ROOT),
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO_ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
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
            # a secret, so not among the settings above: the failure notifier reads it (app/alerts.py)
            **({"ALERT_WEBHOOK_URL": s.alert_webhook_url} if s.alert_webhook_url else {}),
            "no_proxy": "*",
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
        return [
            self.managed(f"airflow-{component}", [airflow, component, *extra.get(component, [])], env)
            for component in self.components
        ]

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
        # one Spark job at a time (one streaming checkpoint, a laptop's cores), and one publishing
        # task at a time (runs of the hourly DAG, its backfills and UI triggers may overlap)
        pools = {
            SPARK_POOL: {"slots": 1, "description": "Spark jobs of clickstream, one at a time"},
            PUBLISH_POOL: {"slots": 1, "description": "clickstream publishing tasks, one at a time"},
        }
        pools_file = self.home / "pools.json"
        pools_file.write_text(json.dumps(pools))
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


def settings_environment(settings: Settings) -> dict[str, str]:
    """The settings as environment variables, for child processes (secrets left out)."""
    return {spec.variable: str(getattr(settings, spec.field)) for spec in SPECS if not spec.secret}


def hadoop_xml(properties: dict[str, str]) -> str:
    """A Hadoop-style configuration file (hive-site.xml) with these properties."""
    body = "".join(
        f"  <property><name>{escape(key)}</name><value>{escape(value)}</value></property>\n"
        for key, value in properties.items()
    )
    return f'<?xml version="1.0"?>\n<configuration>\n{body}</configuration>\n'


_LOG4J2_CONSOLE = """\
status = warn
appender.console.type = Console
appender.console.name = console
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{{ISO8601}} %-5p [%c{{1}}] %m%n
rootLogger.level = {level}
rootLogger.appenderRef.console.ref = console
"""


class LocalRuntime:
    """The local services, started in dependency order and stopped in reverse.

    Without names: `up` starts the default services (not the SQL server, which `make sql` starts,
    nor the Spark cluster, nor PostgreSQL when both databases are elsewhere), and `down` and
    `status` cover every service, the on-demand ones when they run.
    """

    EVERY: ClassVar[dict[str, type[Service]]] = {
        "kafka": KafkaBroker,
        "kafka-cluster": KafkaCluster,
        "postgres": PostgresServer,
        "metastore": HiveMetastore,
        "spark-history": SparkHistoryServer,
        "airflow": Airflow,
        "sql": SparkThriftServer,
        "spark-cluster": SparkCluster,
    }
    ON_DEMAND = ("sql", "spark-cluster", "postgres", "kafka-cluster")

    def __init__(self, settings: Settings, names: list[str] | None = None) -> None:
        unknown = set(names or []) - set(self.EVERY)
        if unknown:
            raise ValueError(f"unknown service(s) {sorted(unknown)}; known: {sorted(self.EVERY)}")
        self.named = bool(names)
        self.services: list[Service] = [
            cls(settings) for name, cls in self.EVERY.items() if (name in names if names else True)
        ]

    def _defaults(self) -> list[Service]:
        if self.named:
            return self.services
        return [service for service in self.services if self._by_default(service)]

    def _by_default(self, service: Service) -> bool:
        """Always-on services; on-demand ones while they run; PostgreSQL while a database lives there."""
        if isinstance(service, PostgresServer) and service.wanted():
            return True
        return service.name not in self.ON_DEMAND or bool(service.status().pids)

    def _with_their_database(self, services: list[Service]) -> list[Service]:
        """Named services, after the local PostgreSQL when one of them keeps its database there
        (`up metastore` starts PostgreSQL first; `down metastore` leaves it to Airflow)."""
        if any(isinstance(service, PostgresServer) for service in services):
            return services
        settings = services[0].settings if services else None
        if settings is None:
            return services
        if any(
            (isinstance(service, HiveMetastore) and not settings.hive_metastore_db_url)
            or (isinstance(service, Airflow) and not settings.airflow_database_url)
            for service in services
        ):
            return [PostgresServer(settings), *services]
        return services

    def up(self, report: Callable[[str], None] | None = None) -> None:
        """Start the services in order; `report` gets a line as each starts and once it is healthy
        (a failure raises, naming the service, its log file and the log's last lines)."""
        for service in self._with_their_database(self.services) if self.named else self._defaults():
            started = time.monotonic()
            if report is not None:
                report(f"{service.name}: starting")
            service.start()
            if report is not None:
                report(f"{service.name}: healthy after {time.monotonic() - started:.1f} s")

    def down(self) -> None:
        for service in reversed(self.services):
            service.stop()

    def status(self) -> list[ServiceStatus]:
        return [service.status() for service in self._defaults()]
