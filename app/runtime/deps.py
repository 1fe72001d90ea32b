"""Where the installed pieces are: the JVM, pyspark's Spark home, the jars and classes in `.deps/`.

`scripts/bootstrap.sh` fills `.deps/`; this module only finds things and says clearly when one
is missing or too old.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path

from app.runtime.process import RuntimeErrorWithHint
from app.settings import REPO_ROOT

DEPS_DIR = REPO_ROOT / ".deps"
KAFKA_JARS_DIR = DEPS_DIR / "jars" / "kafka"
SPARK_KAFKA_JARS_DIR = DEPS_DIR / "jars" / "spark-kafka"
HDFS_JARS_DIR = DEPS_DIR / "jars" / "hdfs"  # jvm/hdfs: the NameNode and DataNode
HDFS_WEBAPPS_DIR = DEPS_DIR / "hdfs-webapps"  # their web pages (`webapps/`), from hadoop-hdfs's tests jar
METASTORE_CLASSES_DIR = DEPS_DIR / "classes" / "metastore"
SPARK_LOCAL_FS_CLASSES_DIR = DEPS_DIR / "classes" / "spark-local-fs"  # jvm/spark-local-fs, compiled
# the same classes as a jar: a folder of classes on a JVM's class path keeps it from a class archive
SPARK_LOCAL_FS_JAR = DEPS_DIR / "jars" / "spark-local-fs.jar"
SPARK_LOCAL_FS_CLASS = "clickstream.hadoop.ForklessLocalFileSystem"
METASTORE_DB_JARS_DIR = DEPS_DIR / "jars" / "metastore-db"  # JDBC drivers besides Derby
# the class archive of Spark's driver JVM (app/runtime/spark_class_archive.py makes it); not in
# .deps/spark, where the container image links Spark's home
SPARK_CLASS_ARCHIVE = DEPS_DIR / "class-archive" / "spark-driver.jsa"
MINIMUM_JAVA = 17

SETUP_HINT = "run `make setup` (scripts/bootstrap.sh) first"


class MissingDependencyError(RuntimeErrorWithHint):
    """Something the runtime needs is not installed, or is too old."""


@cache
def java_executable() -> str:
    """The `java` to run, from JAVA_HOME or PATH, checked to be version 17 or newer."""
    java_home = os.environ.get("JAVA_HOME")
    java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    if not java or not Path(java).exists():
        raise MissingDependencyError(
            f"Java {MINIMUM_JAVA}+ is needed and none was found on PATH or in JAVA_HOME; {SETUP_HINT}"
        )
    banner = subprocess.run([java, "-version"], capture_output=True, text=True, check=False).stderr
    match = re.search(r'version "(\d+)', banner)
    major = int(match.group(1)) if match else 0
    if major < MINIMUM_JAVA:
        first_line = banner.splitlines()[0] if banner else "no version"
        raise MissingDependencyError(
            f"Java {MINIMUM_JAVA}+ is needed, {java} is {first_line!r}: point JAVA_HOME at a JDK {MINIMUM_JAVA}+"
        )
    return java


@cache
def spark_home() -> Path:
    """pyspark's package folder, which is a complete Spark home (bin/, jars/)."""
    try:
        import pyspark
    except ImportError:
        raise MissingDependencyError(f"pyspark is not installed in this Python; {SETUP_HINT}") from None
    return Path(pyspark.__file__).resolve().parent


def jars_in(folder: Path) -> list[Path]:
    jars = sorted(folder.glob("*.jar"))
    if not jars:
        raise MissingDependencyError(f"no jars in {folder}; {SETUP_HINT}")
    return jars


def spark_kafka_jars() -> list[Path]:
    """The jars that give Spark its Kafka source and sink (not bundled with pyspark)."""
    return jars_in(SPARK_KAFKA_JARS_DIR)


def spark_class_archive() -> Path | None:
    """The class archive setup made for a local master's driver, or None before it did."""
    return SPARK_CLASS_ARCHIVE if SPARK_CLASS_ARCHIVE.exists() else None


def spark_local_fs_classes() -> Path | None:
    """The jar of the compiled `jvm/spark-local-fs` (Hadoop's local file system without a `chmod`
    process per file), or None before `make setup` made it."""
    return SPARK_LOCAL_FS_JAR if SPARK_LOCAL_FS_JAR.exists() else None


def postgres_bin(program: str) -> Path:
    """A PostgreSQL server program (postgres, initdb) of Debian's newest installed version."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob(f"*/bin/{program}"),
        key=lambda path: int(path.parts[-3]) if path.parts[-3].isdigit() else 0,
    )
    if not candidates:
        raise MissingDependencyError(
            f"PostgreSQL's {program} is not installed (Debian's package `postgresql`: the local server of "
            "Airflow's and the metastore's databases); `make setup` installs it, or `apt-get install postgresql`; "
            "or point AIRFLOW_DATABASE_URL and HIVE_METASTORE_DB_URL at another server"
        )
    return candidates[-1]
