"""Command line of the producer.

Usage:
  python -m app.producer publish [--data-dir DIR] [--only articles|clicks] [--dry-run]
                                 [--new-version FILE ...] [--replay SPEEDUP] [--json]
  python -m app.producer ledger [--json]

`publish` sends what is new in the data folder (default `PRODUCER_DATA_ROOT_DIRECTORY`) and ends
with a summary table; on a terminal it shows a progress bar (rows/s, files done), elsewhere plain
log lines. `--replay 60` paces clicks by their own timestamps, 60 times faster than they happened.
`ledger` lists what was published. Exit status: 0 done, 1 error, 2 some file was refused.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from app.kafka_io import KafkaSetupError
from app.producer.discovery import DataFile, DataFolderError, FileKind
from app.producer.ledger import LedgerReadError, read_ledger
from app.producer.publisher import PublishError, PublishOptions, publish, publish_shard
from app.producer.report import FileReport, PublishReport
from app.settings import SettingsError, load_settings

log = logging.getLogger("app.producer")


class BarProgress:
    """A rich progress bar: lines of the current file, files done, rows per second."""

    def __init__(self, console: Console) -> None:
        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]} rows/s"),
            TextColumn("files done: {task.fields[files]}"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        self.task: TaskID | None = None
        self.files = 0

    def __enter__(self) -> BarProgress:
        self.bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.__exit__(None, None, None)

    def file_started(self, file: DataFile, lines: int) -> None:
        if self.task is not None:
            self.bar.remove_task(self.task)
        self.task = self.bar.add_task(file.name, total=max(lines - 1, 0), rate="-", files=self.files)

    def lines_done(self, count: int) -> None:
        if self.task is None:
            return
        self.bar.advance(self.task, count)
        task = self.bar.tasks[-1]
        rate = f"{task.speed:,.0f}" if task.speed else "-"
        self.bar.update(self.task, rate=rate, files=self.files)

    def file_finished(self, report: FileReport) -> None:
        self.files += 1


def summary_table(result: PublishReport) -> Table:
    table = Table(title="published")
    for column in ("file", "topic", "status", "version", "rows", "rejected", "seconds", "note"):
        table.add_column(column, justify="right" if column in ("version", "rows", "rejected", "seconds") else "left")
    for report in result.files:
        table.add_row(
            report.file,
            report.topic,
            report.status,
            str(report.version or ""),
            f"{report.rows:,}",
            f"{report.rejected:,}",
            f"{report.seconds:.2f}",
            f"{report.message}; to do: {report.fix}" if report.fix else report.message,
        )
    table.add_section()
    table.add_row("total", "", "", "", f"{result.rows:,}", f"{result.rejected:,}", "", "")
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m app.producer", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    publish_cmd = commands.add_parser("publish", help="publish what is new in the data folder")
    publish_cmd.add_argument("--data-dir", type=Path, help="data folder (default: PRODUCER_DATA_ROOT_DIRECTORY)")
    publish_cmd.add_argument("--only", choices=[kind.value for kind in FileKind], help="publish one kind of file")
    publish_cmd.add_argument("--dry-run", action="store_true", help="parse and count, send nothing")
    publish_cmd.add_argument(
        "--new-version",
        nargs="*",
        default=[],
        metavar="FILE",
        help="publish these changed files again as a new version",
    )
    publish_cmd.add_argument(
        "--replay",
        type=float,
        metavar="SPEEDUP",
        help="pace clicks by click_timestamp, SPEEDUP times faster than real time",
    )
    publish_cmd.add_argument("--json", action="store_true", help="print the report as JSON")
    commands.add_parser("shard", help="internal: one shard of a run split into shards (app/producer/shards.py)")
    ledger_cmd = commands.add_parser("ledger", help="list what was published")
    ledger_cmd.add_argument("--json", action="store_true", help="print the ledger as JSON")
    args = parser.parse_args(argv)

    if args.command == "shard":
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s [shard]: %(message)s")
        return publish_shard(load_settings(), sys.stdin.read(), sys.stdout)

    console = Console()
    if not console.is_terminal:
        console = Console(width=160)  # logs and CI: wide enough for whole file names
    interactive = console.is_terminal and not args.json
    logging.basicConfig(
        level=logging.WARNING if interactive else logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        settings = load_settings()
        if args.command == "ledger":
            entries = read_ledger(settings)
            if args.json:
                print(json.dumps({name: entry.__dict__ for name, entry in sorted(entries.items())}, indent=2))
                return 0
            table = Table(title=f"ledger ({settings.kafka_ledger_topic})")
            for column in ("file", "topic", "version", "status", "rows", "rejected", "published at", "sha256"):
                table.add_column(column)
            for name, entry in sorted(entries.items()):
                table.add_row(
                    name,
                    entry.topic,
                    str(entry.version),
                    entry.status,
                    f"{entry.rows:,}",
                    f"{entry.rejected:,}",
                    entry.published_at,
                    entry.sha256[:12],
                )
            console.print(table)
            return 0
        if args.replay is not None and args.replay <= 0:
            parser.error("--replay takes a speed-up greater than 0")
        options = PublishOptions(
            dry_run=args.dry_run,
            new_versions=set(args.new_version),
            kinds=[FileKind(args.only)] if args.only else list(FileKind),
            replay_speedup=args.replay,
            data_root=args.data_dir,
        )
        if interactive:
            with BarProgress(console) as bar:
                result = publish(settings, options, bar)
        else:
            result = publish(settings, options)
    except (SettingsError, DataFolderError, KafkaSetupError, LedgerReadError, PublishError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        console.print(summary_table(result))
    return 2 if result.refused else 0


if __name__ == "__main__":
    sys.exit(main())
