"""The Spark History Server service: the UI of the Spark applications the jobs ran (their event logs)."""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from pathlib import Path

from app.runtime import deps
from app.runtime.process import ManagedProcess
from app.runtime.service import Health, Service

log = logging.getLogger(__name__)


class SparkHistoryServer(Service):
    """The Spark History Server: the Spark UI of every job the project ran or runs (from event logs)."""

    name = "spark-history"
    start_timeout = 90.0
    port_field = "spark_history_port"

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
