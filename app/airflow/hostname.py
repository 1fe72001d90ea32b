"""The host name a task instance records (Airflow's `hostname_callable`), with the CeleryExecutor:
the machine's name, and, for a worker `make up` started on it, which one (`worker-2@host`), so that
two workers of one host are told apart in the UI and in the API's task instances."""

from __future__ import annotations

import os
import socket

WORKER_NAME = "CLICKSTREAM_WORKER_NAME"  # set by `make up` on each Celery worker it starts: worker-1, worker-2...


def worker_hostname() -> str:
    host = socket.getfqdn()
    worker = os.environ.get(WORKER_NAME)
    return f"{worker}@{host}" if worker else host
