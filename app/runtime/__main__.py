"""Command line of the local runtime: `python -m app.runtime up|down|status [SERVICE ...]`.

`make up`, `make down` and `make status` call it. `run SERVICE` runs one service in the
foreground instead (the containers of `docker-compose.airflow.yml` do). `airflow ARG ...` runs the
real `airflow` command with the environment `make up` gives Airflow (`make airflow ARGS="..."`).
Errors print one clear line and exit 1.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from app.runtime.airflow_server import Airflow
from app.runtime.local import LocalRuntime
from app.runtime.process import RuntimeErrorWithHint
from app.runtime.service import ServiceStatus
from app.settings import Settings, SettingsError, load_settings

log = logging.getLogger("app.runtime")


def format_status(statuses: list[ServiceStatus]) -> str:
    rows = [("service", "state", "pid", "port", "health")]
    for status in statuses:
        state = "running" if status.running else ("partly running" if status.pids else "stopped")
        health = ("healthy: " if status.health.healthy else "unhealthy: ") + status.health.detail
        rows.append(
            (
                status.name,
                state,
                ",".join(map(str, status.pids)) or "-",
                ",".join(map(str, status.ports)),
                health if status.pids else "-",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return "\n".join("  ".join(cell.ljust(widths[i]) if i < 4 else cell for i, cell in enumerate(row)) for row in rows)


def airflow_login_hint(settings: Settings, generated_now: bool = False) -> str:
    """Where the UI is and where its password comes from. The password itself only when `up` has
    just generated it (shown once, as `airflow standalone` does); never one the user set."""
    airflow = Airflow(settings)
    if settings.airflow_admin_password:
        where = "see AIRFLOW_ADMIN_PASSWORD"
    elif generated_now:
        where = f"{airflow.admin_password()}  (generated now and shown once; kept in {airflow.passwords_file})"
    else:
        where = f"see {airflow.passwords_file}"
    return f"\nAirflow UI: {settings.airflow_url}  user: {settings.airflow_admin_user}  password: {where}"


def up(settings: Settings, runtime: LocalRuntime, report: Callable[[str], None]) -> str:
    """Start the services, reporting each; returns the Airflow login line (empty without Airflow)."""
    with_airflow = any(isinstance(service, Airflow) for service in runtime.services)
    first_start = with_airflow and not Airflow(settings).passwords_file.exists()
    runtime.up(report)
    return airflow_login_hint(settings, generated_now=first_start) if with_airflow else ""


def airflow_cli(settings: Settings, arguments: list[str]) -> int:
    """The `airflow` command of this checkout's environment, run with the environment `make up`
    gives Airflow (its home, database, DAGs folder and connections); returns its exit code."""
    command = [str(Path(sys.executable).parent / "airflow"), *arguments]
    return subprocess.call(command, env={**os.environ, **Airflow(settings).environment()})


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    if arguments[:1] == ["airflow"]:  # everything after it is Airflow's
        try:
            return airflow_cli(load_settings(), arguments[1:])
        except SettingsError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
    parser = argparse.ArgumentParser(prog="python -m app.runtime", description=__doc__)
    parser.add_argument("command", choices=("up", "down", "status", "run"))
    parser.add_argument(
        "services", nargs="*", help="kafka, metastore, spark-history, airflow, sql (default: all but sql)"
    )
    args = parser.parse_args(arguments)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = load_settings()
        runtime = LocalRuntime(settings, args.services or None)
        if args.command == "run":
            if len(runtime.services) != 1 or not args.services:
                raise ValueError("run takes one service, e.g. `python -m app.runtime run metastore`")
            runtime.services[0].run_in_foreground()
        if args.command == "up":
            login = up(settings, runtime, lambda line: print(line, flush=True))
            print(format_status(runtime.status()))
            if login:
                print(login)
        elif args.command == "down":
            runtime.down()
            print(format_status(runtime.status()))
        else:
            statuses = runtime.status()
            print(format_status(statuses))
            return 0 if all(s.running and s.health.healthy for s in statuses) else 3
    except (RuntimeErrorWithHint, SettingsError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
