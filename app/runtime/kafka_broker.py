"""The Kafka service: one broker in KRaft mode (broker and controller in one JVM), or a cluster of
three such nodes for the fault tests and for trying a replicated layout on one machine.
"""

from __future__ import annotations

import logging
import subprocess
from dataclasses import dataclass
from pathlib import Path

from app.runtime import deps
from app.runtime.process import ManagedProcess, ServiceStartError, port_accepts
from app.runtime.service import LOG4J2_CONSOLE, Health, Service, java_service_flags
from app.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class KraftNode:
    """One Kafka process: broker and KRaft controller in one JVM."""

    node_id: int
    port: int
    controller_port: int
    home: Path

    @property
    def properties_file(self) -> Path:
        """The node's configuration, written before each start."""
        return self.home / "server.properties"

    @property
    def data_dir(self) -> Path:
        """The node's log segments and KRaft metadata (`log.dirs`)."""
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
            *java_service_flags(self.settings, self.home, self.settings.kafka_broker_heap),
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
        (self.home / "log4j2.properties").write_text(LOG4J2_CONSOLE.format(level="INFO"))
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
