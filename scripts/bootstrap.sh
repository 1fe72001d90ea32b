#!/usr/bin/env bash
# Installs whatever clickstream needs and is missing, and nothing twice:
#   - Java 17+, Maven, PostgreSQL and Redis (Debian packages, when missing and apt-get is usable),
#   - the Python virtual environment .venv from requirements/requirements.lock (through uv),
#   - the JVM jars from Maven Central into .deps/jars/{kafka,spark-kafka,metastore-db,hdfs},
#     and HDFS's web pages into .deps/hdfs-webapps,
#   - the loopback-only Hive Metastore launcher compiled into .deps/classes, and Hadoop's local
#     file system without a chmod per file into .deps/jars/spark-local-fs.jar,
#   - the class archive of Spark's driver JVM, .deps/class-archive/spark-driver.jsa (app/runtime/spark_class_archive.py),
#   - with --test-tools: Debian's chromium for the browser tests (Playwright drives it; no download),
#     and docker-compose (to validate the Compose file)
# Each step keeps a stamp (a hash of its inputs) and is skipped while the stamp matches.
# Every failure ends with one line saying what failed and what to do, and a non-zero exit.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEPS="$REPO/.deps"
VENV="$REPO/.venv"
UV_VERSION="0.13.8"
PYTHON_WANTED="3.11"
mkdir -p "$DEPS/stamps" "$DEPS/logs"

say() { printf '[setup] %s\n' "$*"; }
fail() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

stamp_of() { cat "$@" | sha256sum | cut -c1-64; }
is_current() { [ -f "$DEPS/stamps/$1" ] && [ "$(cat "$DEPS/stamps/$1")" = "$2" ]; }
mark_current() { printf '%s' "$2" > "$DEPS/stamps/$1"; }

apt_install() {
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    fail "$1 is missing and cannot be installed here (no root or no apt-get): install $2 and run again"
  fi
  say "installing $2 with apt-get"
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2"; } \
      > "$DEPS/logs/apt-$2.log" 2>&1; then
    fail "apt-get could not install $2 (Debian's package mirror unreachable?); see $DEPS/logs/apt-$2.log"
  fi
}

# --- Java 17+ -----------------------------------------------------------------------------
java_major() { java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n1; }
if ! command -v java >/dev/null || ! command -v javac >/dev/null; then
  apt_install "Java 17 (java and javac)" openjdk-17-jdk-headless
fi
major="$(java_major)"
if [ -z "$major" ] || [ "$major" -lt 17 ]; then
  fail "Java 17 or newer is needed, found '$(java -version 2>&1 | head -n1)': set JAVA_HOME/PATH to a JDK 17+"
fi

# --- Maven --------------------------------------------------------------------------------
command -v mvn >/dev/null || apt_install "Maven (mvn)" maven

# --- PostgreSQL: Airflow's metadata database and the metastore's catalogue (`make up` runs it) ---
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || apt_install "PostgreSQL (server programs)" postgresql

# --- Redis: the CeleryExecutor's queue (`make up` runs it with AIRFLOW_EXECUTOR=CeleryExecutor) ---
[ -x /usr/bin/redis-server ] || command -v redis-server >/dev/null || apt_install "Redis (redis-server)" redis-server

# --- Python virtual environment -----------------------------------------------------------
find_python() {
  for candidate in "python$PYTHON_WANTED" python3; do
    if command -v "$candidate" >/dev/null && \
       [ "$("$candidate" -c 'import sys; print("%d.%d" % sys.version_info[:2])')" = "$PYTHON_WANTED" ]; then
      command -v "$candidate"; return 0
    fi
  done
  return 1
}
lock="$REPO/requirements/requirements.lock"
venv_stamp="$(stamp_of "$lock")-$UV_VERSION-bytecode"
if ! is_current venv "$venv_stamp" || [ ! -x "$VENV/bin/python" ]; then
  python="$(find_python)" || fail "Python $PYTHON_WANTED is needed (python$PYTHON_WANTED or python3 on PATH)"
  if [ ! -x "$VENV/bin/python" ]; then
    say "creating $VENV with $python"
    "$python" -m venv "$VENV" || fail "could not create the virtual environment $VENV"
  fi
  if ! "$VENV/bin/uv" --version 2>/dev/null | grep -q "$UV_VERSION"; then
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check "uv==$UV_VERSION" \
      > "$DEPS/logs/pip-uv.log" 2>&1 || fail "could not install uv from PyPI (PyPI unreachable?); see $DEPS/logs/pip-uv.log"
  fi
  say "installing Python packages from requirements/requirements.lock (pyspark builds once, about a minute)"
  # compiled once here (about 14 s on 2 cores): where PYTHONDONTWRITEBYTECODE is set, as on our CI
  # machines, Python never writes its bytecode cache, and every process (each Airflow task,
  # spark-submit, test worker) compiled what it imports again: `import airflow.sdk` took 3.4 s, 1.7 s compiled
  if ! "$VENV/bin/uv" pip sync --compile-bytecode --python "$VENV/bin/python" "$lock" > "$DEPS/logs/uv-sync.log" 2>&1; then
    tail -n 5 "$DEPS/logs/uv-sync.log" >&2
    fail "installing the Python packages failed (PyPI unreachable?); see $DEPS/logs/uv-sync.log"
  fi
  # the project itself is imported from the repository root: no install step, one path file
  echo "$REPO" > "$VENV/lib/python$PYTHON_WANTED/site-packages/clickstream-repo.pth"
  mark_current venv "$venv_stamp"
fi

# --- JVM jars from Maven Central ----------------------------------------------------------
resolve_jars() {  # name: jvm/<name>/pom.xml -> .deps/jars/<name>
  local name="$1" pom="$REPO/jvm/$1/pom.xml" out="$DEPS/jars/$1"
  local stamp; stamp="$(stamp_of "$pom")"
  is_current "jars-$name" "$stamp" && [ -d "$out" ] && return 0
  say "resolving $name jars from Maven Central"
  rm -rf "$out"
  # shellcheck disable=SC2086 # MAVEN_ARGS holds extra flags (a mirror's settings, offline), as in Maven 3.9+
  if ! mvn -B -q ${MAVEN_ARGS:-} -f "$pom" dependency:copy-dependencies -DincludeScope=runtime \
        -DoutputDirectory="$out" > "$DEPS/logs/mvn-$name.log" 2>&1; then
    tail -n 5 "$DEPS/logs/mvn-$name.log" >&2
    fail "Maven could not resolve jvm/$name/pom.xml (Maven Central unreachable?); see $DEPS/logs/mvn-$name.log"
  fi
  mark_current "jars-$name" "$stamp"
}
resolve_jars kafka
resolve_jars spark-kafka
resolve_jars metastore-db
resolve_jars hdfs
# the NameNode's and DataNode's web pages: Maven's hadoop-hdfs jar leaves out its `webapps/`, which
# its tests jar carries (the same release); the daemons find them on their class path
hdfs_pages_stamp="$(stamp_of "$REPO/jvm/hdfs/pom.xml")"
if ! is_current hdfs-webapps "$hdfs_pages_stamp" || [ ! -d "$DEPS/hdfs-webapps/webapps" ]; then
  say "unpacking HDFS's web pages"
  rm -rf "$DEPS/hdfs-webapps"
  hadoop_version="$(sed -n 's:.*<hadoop.version>\(.*\)</hadoop.version>.*:\1:p' "$REPO/jvm/hdfs/pom.xml")"
  # run from the folder it fills: without a pom, the goal's marker files land under
  # "./${project.basedir}/target", and the rm above must clear them too (a stale marker skips the unpack)
  mkdir -p "$DEPS/hdfs-webapps"
  # shellcheck disable=SC2086
  if ! (cd "$DEPS/hdfs-webapps" && mvn -B -q ${MAVEN_ARGS:-} dependency:unpack -Dartifact="org.apache.hadoop:hadoop-hdfs:$hadoop_version:jar:tests" \
        -DoutputDirectory="$DEPS/hdfs-webapps" '-Dmdep.unpack.includes=webapps/**') > "$DEPS/logs/mvn-hdfs-webapps.log" 2>&1; then
    tail -n 5 "$DEPS/logs/mvn-hdfs-webapps.log" >&2
    fail "Maven could not unpack HDFS's web pages; see $DEPS/logs/mvn-hdfs-webapps.log"
  fi
  mark_current hdfs-webapps "$hdfs_pages_stamp"
fi

# --- small Java classes of our own, compiled against pyspark's jars ------------------------------
pyspark_jars="$("$VENV/bin/python" -c 'import pyspark, os; print(os.path.join(os.path.dirname(pyspark.__file__), "jars"))')"

# compile_java STAMP FOLDER WHAT: jvm/FOLDER/src into .deps/classes/FOLDER, again only when its
# sources or the lock changed
compile_java() {
  local stamp_name="$1" folder="$2" what="$3"
  local src="$REPO/jvm/$folder/src" classes="$DEPS/classes/$folder" javac_log="$DEPS/logs/javac-$folder.log"
  local stamp
  stamp="$(find "$src" -name '*.java' -print0 | sort -z | xargs -0 cat | sha256sum | cut -c1-64)-$(stamp_of "$lock")"
  if is_current "$stamp_name" "$stamp"; then
    return 0
  fi
  say "compiling $what"
  rm -rf "$classes" && mkdir -p "$classes"
  if ! javac -nowarn -d "$classes" -cp "$pyspark_jars/*" $(find "$src" -name '*.java') > "$javac_log" 2>&1; then
    cat "$javac_log" >&2
    fail "compiling jvm/$folder failed; see $javac_log"
  fi
  mark_current "$stamp_name" "$stamp"
}

# the Hive Metastore launcher (binds the thrift port to one address)
compile_java metastore-launcher metastore "the metastore launcher"
# Hadoop's local file system without a chmod process per file (Spark on a local master)
compile_java spark-local-fs spark-local-fs "Spark's local file system"
# ... as a jar: a JVM with a folder of classes on its class path cannot map a class archive
if [ ! -f "$DEPS/jars/spark-local-fs.jar" ] || [ -n "$(find "$DEPS/classes/spark-local-fs" -newer "$DEPS/jars/spark-local-fs.jar" -name '*.class')" ]; then
  jar cf "$DEPS/jars/spark-local-fs.jar" -C "$DEPS/classes/spark-local-fs" .
fi

# --- the class archive of Spark's driver JVM (a job at setup, then a few seconds less per job) ---
if ! "$VENV/bin/python" -m app.runtime.spark_class_archive 2> "$DEPS/logs/spark-class-archive.log"; then
  tail -n 20 "$DEPS/logs/spark-class-archive.log" >&2
  fail "Spark's class archive could not be made; see $DEPS/logs/spark-class-archive.log"
fi

# --- tools only the tests use (with --test-tools: `make test` asks for them) ---------------------
if [ "${1:-}" = "--test-tools" ]; then
  command -v chromium >/dev/null || apt_install "Chromium (for the browser tests)" chromium
  command -v docker-compose >/dev/null || apt_install "docker-compose (to validate the Compose file)" docker-compose
fi

say "ready: $VENV, $DEPS/jars"
