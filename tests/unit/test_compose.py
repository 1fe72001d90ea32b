"""docker-compose.airflow.yml, checked as far as a machine without a Docker engine can: Debian's
docker-compose validates it, and its services, ports, versions and variables agree with `.env`,
the settings, the Dockerfile and the README."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.airflow.pools import PUBLISH_POOL, SPARK_POOL
from app.settings import REPO_ROOT, SPECS, SettingsError, load_settings

COMPOSE_FILE = REPO_ROOT / "docker-compose.airflow.yml"
SERVICES = {
    "postgres",
    "kafka",
    "hive-metastore",
    "spark-master",
    "spark-worker-1",
    "spark-worker-2",
    "spark-history",
    "airflow-init",
    "airflow-api-server",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker-1",
    "airflow-worker-2",
    "redis",
}
KNOWN_VARIABLES = {spec.variable for spec in SPECS} | {alias for spec in SPECS for alias in spec.aliases}


# what a user exports from .env.local before `docker compose up` (see the file's header)
COMPOSE_SECRETS = {
    "AIRFLOW_ADMIN_PASSWORD": "a-password",
    "POSTGRES_PASSWORD": "another-password",
    "AIRFLOW_JWT_SECRET": "a-jwt-secret",
    "AIRFLOW_FERNET_KEY": "a-fernet-key",
}


def compose_config(binary: str, secrets: dict[str, str]) -> subprocess.CompletedProcess[str]:
    environment = {key: value for key, value in os.environ.items() if key not in COMPOSE_SECRETS}
    return subprocess.run(
        [binary, "-f", str(COMPOSE_FILE), "config"],
        cwd=REPO_ROOT,
        env={**environment, **secrets},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.fail("docker-compose is not installed: `make test` installs it (scripts/bootstrap.sh --test-tools)")
    result = compose_config(binary, COMPOSE_SECRETS)
    assert result.returncode == 0, result.stderr
    assert "is not set" not in result.stderr, result.stderr  # every ${VARIABLE} has a value or a default
    parsed: dict[str, Any] = yaml.safe_load(result.stdout)
    return parsed


def dotenv() -> dict[str, str]:
    values = {}
    for line in (REPO_ROOT / ".env").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


def test_the_compose_file_is_valid_and_has_every_service(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == SERVICES


@pytest.mark.parametrize("secret", sorted(COMPOSE_SECRETS))
def test_the_compose_file_refuses_to_start_without_each_of_its_secrets(secret: str, compose: dict[str, Any]) -> None:
    """No default password or signing key: without one, Compose stops and says where it goes."""
    binary = shutil.which("docker-compose")
    assert binary is not None
    refused = compose_config(binary, {key: value for key, value in COMPOSE_SECRETS.items() if key != secret})
    assert refused.returncode != 0
    assert f"set {secret} in .env.local" in refused.stderr, refused.stderr


def test_dotenv_holds_no_secret_and_a_secret_put_there_is_refused(tmp_path: Path) -> None:
    secrets = {spec.variable for spec in SPECS if spec.secret} | set(COMPOSE_SECRETS)
    assert not secrets & set(dotenv()), "a secret in .env, a file tracked by git"
    tracked = tmp_path / ".env"
    tracked.write_text("KAFKA_TOPIC=from_tracked\nAIRFLOW_ADMIN_USER=someone\n")
    (tmp_path / ".env.local").write_text("AIRFLOW_ADMIN_PASSWORD=s3cret\nKAFKA_TOPIC=from_local\n")
    settings = load_settings(environ={}, env_file=tracked)
    assert (settings.kafka_topic, settings.airflow_admin_password) == ("from_local", "s3cret")  # .env.local wins
    tracked.write_text("AIRFLOW_ADMIN_PASSWORD=s3cret\n")
    refused = r"\.env sets AIRFLOW_ADMIN_PASSWORD: it is tracked by git .*/\.env\.local "
    with pytest.raises(SettingsError, match=refused):
        load_settings(environ={}, env_file=tracked)
    assert ".env.local" in (REPO_ROOT / ".gitignore").read_text().split()[-1]


def test_every_variable_of_dotenv_is_a_setting() -> None:
    unknown = set(dotenv()) - KNOWN_VARIABLES
    assert not unknown, f".env sets variables no setting reads: {sorted(unknown)}"


def test_each_clickstream_container_gets_valid_settings(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        if service.get("image") != "clickstream:latest":
            continue
        environment = {key: str(value) for key, value in (service.get("environment") or {}).items()}
        settings = load_settings(environ=environment, env_file=REPO_ROOT / ".env")  # raises on a bad value
        assert settings.kafka_servers == "kafka:9092", name
        assert settings.hive_metastore_uri == "thrift://hive-metastore:9083", name
        assert settings.spark_master == "spark://spark-master:7077", name


def test_ports_are_published_on_loopback_only_and_match_dotenv(compose: dict[str, Any]) -> None:
    published = {}
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            if isinstance(port, str):  # short syntax, as docker-compose 1.x prints it: ip:host:container
                host_ip, host_port, _ = port.rsplit(":", 2)
                port = {"host_ip": host_ip, "published": host_port}
            assert port.get("host_ip") == "127.0.0.1", f"{name} publishes {port} beyond loopback"
            published[name] = int(port["published"])
    assert published["airflow-api-server"] == int(dotenv()["AIRFLOW_API_PORT"])


def test_versions_and_pools_agree_with_the_local_runtime(compose: dict[str, Any]) -> None:
    kafka_version = re.search(r"<kafka.version>(.+)</kafka.version>", (REPO_ROOT / "jvm/kafka/pom.xml").read_text())
    assert kafka_version and compose["services"]["kafka"]["image"] == f"apache/kafka:{kafka_version.group(1)}"
    airflow_version = re.search(
        r"apache-airflow(?:\[[^\]]*\])?==(\S+)", (REPO_ROOT / "requirements/requirements.in").read_text()
    )
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    assert airflow_version and f"ARG AIRFLOW_VERSION={airflow_version.group(1)}" in dockerfile
    init = " ".join(compose["services"]["airflow-init"]["command"])
    assert f"pools set {SPARK_POOL} 1" in init and f"pools set {PUBLISH_POOL} 1" in init


def test_the_readme_describes_the_file_and_says_it_was_not_started_here() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme[readme.index("## Docker Compose") :]
    for service in SERVICES:
        assert f"`{service}`" in section, service
    assert "docker compose -f docker-compose.airflow.yml up" in section
    assert "not started" in section
