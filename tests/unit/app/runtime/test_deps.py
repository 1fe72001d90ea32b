"""Bad environments get one clear message: Java too old or missing, registries unreachable."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.runtime import deps
from app.settings import REPO_ROOT


def fake_java(tmp_path: Path, banner: str) -> Path:
    java_home = tmp_path / "jdk"
    (java_home / "bin").mkdir(parents=True)
    java = java_home / "bin" / "java"
    java.write_text(f"#!/bin/sh\necho '{banner}' >&2\n")
    java.chmod(0o755)
    return java_home


@pytest.fixture
def fresh_java_lookup() -> Iterator[None]:
    """`deps.java_executable()` looks for Java again (it keeps its first answer), and forgets the
    fake one afterwards."""
    deps.java_executable.cache_clear()
    yield
    deps.java_executable.cache_clear()


@pytest.mark.usefixtures("fresh_java_lookup")
def test_java_older_than_17_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JAVA_HOME", str(fake_java(tmp_path, 'openjdk version "11.0.22" 2024-01-16')))
    with pytest.raises(deps.MissingDependencyError, match=r"Java 17\+ is needed.*11\.0\.22.*JAVA_HOME"):
        deps.java_executable()


@pytest.mark.usefixtures("fresh_java_lookup")
def test_missing_java_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "no-jdk-here"))
    with pytest.raises(deps.MissingDependencyError, match=r"Java 17\+ is needed and none was found"):
        deps.java_executable()


@pytest.mark.usefixtures("fresh_java_lookup")
def test_java_17_is_accepted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    java_home = fake_java(tmp_path, 'openjdk version "17.0.15" 2025-04-15')
    monkeypatch.setenv("JAVA_HOME", str(java_home))
    assert deps.java_executable() == str(java_home / "bin" / "java")


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def copy_of_repo(tmp_path: Path) -> Path:
    """The files bootstrap.sh reads, in a folder of their own (so the real .venv is untouched)."""
    repo = tmp_path / "repo"
    for part in ("scripts", "requirements", "jvm"):
        shutil.copytree(REPO_ROOT / part, repo / part)
    return repo


def run_bootstrap(repo: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(repo / "scripts" / "bootstrap.sh")],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_unreachable_pypi_gives_one_clear_error(tmp_path: Path) -> None:
    index = f"http://127.0.0.1:{closed_port()}/simple"
    result = run_bootstrap(
        copy_of_repo(tmp_path),
        PIP_INDEX_URL=index,
        UV_INDEX_URL=index,
        UV_DEFAULT_INDEX=index,
        PIP_RETRIES="0",
        PIP_TIMEOUT="2",
        PIP_NO_CACHE_DIR="1",
        UV_NO_CACHE="1",
    )
    assert result.returncode != 0
    assert "[setup] ERROR:" in result.stderr and "PyPI unreachable?" in result.stderr


def test_unreachable_maven_central_gives_one_clear_error(tmp_path: Path) -> None:
    repo = copy_of_repo(tmp_path)
    # reuse the installed environment, so only the jar step has to reach out
    (repo / ".venv").symlink_to(REPO_ROOT / ".venv")
    (repo / ".deps" / "stamps").mkdir(parents=True)
    shutil.copy(REPO_ROOT / ".deps" / "stamps" / "venv", repo / ".deps" / "stamps" / "venv")
    result = run_bootstrap(repo, MAVEN_ARGS=f"-o -Dmaven.repo.local={tmp_path / 'empty-m2'}")
    assert result.returncode != 0
    assert "[setup] ERROR: Maven could not resolve jvm/kafka/pom.xml (Maven Central unreachable?)" in result.stderr
