"""What every benchmark of `make bench` shares: data folder, fresh names, timing, memory, machine facts."""

from __future__ import annotations

import os
import platform
import re
import secrets
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from app.runtime import deps
from app.settings import Settings
from app.storage import Location


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def flat_data_folder(source: Path, target: Path) -> int:
    """Every click file (also in `clicks/`) and the catalogue of `source`, hard-linked (copied across
    file systems: the producer refuses symbolic links out of its folder); returns the count."""
    target.mkdir(parents=True, exist_ok=True)
    files = sorted({*source.glob("clicks_hour_*.csv"), *source.glob("clicks/clicks_hour_*.csv")})
    files += sorted(source.glob("articles_metadata.csv"))
    if not files:
        raise SystemExit(f"no clicks_hour_*.csv in {source} (BENCH_DATA_DIR)")
    for path in files:
        link_or_copy(path, target / path.name)
    return len(files)


def link_or_copy(path: Path, target: Path) -> None:
    """`target` with `path`'s bytes: a hard link, or a copy across file systems (input CSVs, never table data)."""
    target.unlink(missing_ok=True)
    try:
        os.link(path.resolve(), target)
    except OSError:
        shutil.copy2(path, target)


@dataclass
class PeakMemory:
    """The peak resident memory (VmHWM) of every process whose command line `matches`, sampled
    from /proc twice a second while the block runs; by label ("java", "python", ...)."""

    matches: Callable[[list[str]], bool]
    peaks_kib: dict[int, tuple[str, int]] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> PeakMemory:
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _sample(self) -> None:
        while not self._stop.wait(0.5):
            for proc in Path("/proc").iterdir():
                if not proc.name.isdigit():
                    continue
                try:
                    argv = (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")
                    if not self.matches(argv):
                        continue
                    status = (proc / "status").read_text()
                except OSError:
                    continue
                found = re.search(r"VmHWM:\s+(\d+) kB", status)
                if found:
                    label = Path(argv[0]).name
                    previous = self.peaks_kib.get(int(proc.name), (label, 0))[1]
                    self.peaks_kib[int(proc.name)] = (label, max(previous, int(found.group(1))))

    def peak_mib(self, label: str) -> float:
        """The largest peak among the processes of that label (nan if none was seen)."""
        values = [kib for name, kib in self.peaks_kib.values() if name.startswith(label)]
        return max(values) / 1024 if values else float("nan")


@dataclass(frozen=True)
class Timed:
    seconds: float
    peak_rss_mib: float  # of the largest process of the command's tree (GNU time)
    stdout: str
    stderr: str


def timed(command: list[str], environment: dict[str, str], cwd: Path, what: str) -> Timed:
    """Run `command` to the end under GNU time: wall seconds and peak RSS; a failure names `what`."""
    gnu_time = ["/usr/bin/time", "-f", "peak_rss_kib=%M"] if Path("/usr/bin/time").exists() else []
    started = time.perf_counter()
    finished = subprocess.run(
        [*gnu_time, *command], cwd=cwd, env=environment, capture_output=True, text=True, check=False
    )
    seconds = time.perf_counter() - started
    if finished.returncode != 0:
        raise SystemExit(f"{what} failed ({finished.returncode}):\n{finished.stdout[-2000:]}{finished.stderr[-3000:]}")
    found = re.findall(r"peak_rss_kib=(\d+)", finished.stderr)
    return Timed(seconds, int(found[-1]) / 1024 if found else float("nan"), finished.stdout, finished.stderr)


def median_of(values: Iterable[float]) -> float:
    import statistics

    return statistics.median(list(values))


def listing(values: Iterable[float], digits: int = 0) -> str:
    return ", ".join(f"{value:,.{digits}f}" for value in values)


def reached(value: float, goal: float) -> str:
    """The verdict on a speed goal `value >= goal`, with how far a miss fell short."""
    return "met." if value >= goal else f"missed, by a factor of {goal / value:.1f}."


def commit() -> str:
    """The code measured: HEAD's hash, and whether the work tree differs from it."""
    from app.settings import REPO_ROOT

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=False).stdout.strip()

    head = git("rev-parse", "--short=12", "HEAD") or "?"
    return head + (" with uncommitted changes" if git("status", "--porcelain", "--untracked-files=no") else "")


def machine() -> dict[str, str]:
    import confluent_kafka
    import pyspark

    memory_kib = next(
        int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")
    )
    java = subprocess.run([deps.java_executable(), "-version"], capture_output=True, text=True, check=False).stderr
    kafka_jar = next(iter(sorted(deps.KAFKA_JARS_DIR.glob("kafka_*.jar"))), None)
    return {
        "commit": commit(),
        "cores": str(os.cpu_count()),
        "memory": f"{memory_kib / 1024 / 1024:.0f} GiB",
        "cpu": next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if "model name" in line
            ),
            platform.processor(),
        ),
        "java": java.splitlines()[0] if java else "?",
        "python": platform.python_version(),
        "kafka": kafka_jar.stem.split("-", 1)[1] if kafka_jar else "?",
        "librdkafka": confluent_kafka.libversion()[0],
        "spark": pyspark.__version__,
    }


def bench_settings(base: Settings, state: Path) -> Settings:
    """The user's settings, with every service of the benchmark in `state` on free loopback ports."""
    return replace(
        base,
        state_dir=state,
        hive_warehouse_dir=Location.local(state / "warehouse"),
        parquet_destination_path=Location.local(state / "lake"),
        check_point_location=Location.local(state / "checkpoints"),
        bind_host="127.0.0.1",
        kafka_servers=f"127.0.0.1:{free_port()}",
        kafka_controller_port=free_port(),
        kafka_broker_heap="1g",
        hive_metastore_port=free_port(),
        hive_metastore_db_url="",  # the benchmark's own PostgreSQL, as `make up` starts
        airflow_database_url="",
        postgres_port=free_port(),
        airflow_api_port=free_port(),
        airflow_admin_password=secrets.token_urlsafe(16),
        spark_ui_port=free_port(),
        spark_history_port=free_port(),
        spark_thrift_port=free_port(),
        hdfs_namenode_port=free_port(),
        hdfs_namenode_http_port=free_port(),
        producer_file_stable_seconds=0.0,
    )
