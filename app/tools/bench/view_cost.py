"""`make bench`, item 9: what the pipeline view and `check_tables` cost, on the tables of the whole
shared data set (as the benchmark's Airflow run left them) and on a ten times larger set.

The larger set is the same tables seen ten times: every hourly partition (raw clicks, each
aggregate, the sessions) and every day of `hour_reconciliation` is linked into nine more copies,
each shifted by a whole number of weeks and registered in the metastore, as the same files
shifted by weeks would be after landing. A full check by hand (every hour) then reconciles the
copies, and the figures are taken again. Measured: the view (`read_state`, every section, as a page
load builds it; the detail charts of the busiest hour), the check a run does (one hour asked and
the hours changed since their check: none), and the full check by hand.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from app.hours import DAY_LAYOUT, Hour
from app.settings import Settings
from app.storage import Location
from app.tools.bench.common import listing, median_of

log = logging.getLogger(__name__)

COPIES = 9  # besides the original: ten times the tables
VIEW_GOAL_SECONDS = 2.0


@dataclass(frozen=True)
class ViewCost:
    hours: int  # hours in the tables
    clicks: int  # raw clicks in the tables
    views: list[float]
    run_checks: list[float]  # the check a run does: one hour asked
    full_check: float  # every hour, once


def measure(settings: Settings, runs: int, copies: bool = False) -> ViewCost:
    """The full check first (it reconciles hours not checked yet, as the hourly runs would have),
    then the view and a run's check. The copies repeat the original files' rows, so on them the
    check finds each file's rows ten times and says so: the cost is what is measured there."""
    from app.pipeline_view import read_state
    from app.table_checks import check_tables

    def checked(hours: list[Hour] | None) -> tuple[float, object]:
        started = time.perf_counter()
        report = check_tables(settings, hours)
        if report.problems and not copies:
            raise SystemExit(f"the tables disagree in the benchmark: {report.problems[:3]}")
        return time.perf_counter() - started, report

    full_check, report = checked(None)
    read_state(settings)  # the first imports pyarrow's readers and the clients, as the view's warm-up does
    views = []
    state = None
    for _ in range(runs):
        started = time.perf_counter()
        state = read_state(settings)
        views.append(time.perf_counter() - started)
        for section in (state.kafka, state.ledger, state.tables, state.charts):
            if section.error:
                raise SystemExit(f"the view failed in the benchmark: {section.error}")
    assert state is not None and state.charts.data.hour
    hour = (state.charts.data.hour[:10], int(state.charts.data.hour[11:]))
    run_checks = [checked([hour])[0] for _ in range(runs)]
    return ViewCost(len(report.states), report.raw_clicks, views, run_checks, full_check)  # type: ignore[attr-defined]


def ten_times(settings: Settings, copies: int = COPIES) -> None:
    """Link every hourly partition and reconciliation day into `copies` more, each shifted by whole
    weeks past the data's span, so no copy lands on another's days; each copy carries its
    original's statistics, as a landed partition would."""
    from app.metastore import Metastore, partition_values
    from app.parquet_folders import parquet_files
    from app.reconciliation import TABLE as RECONCILIATION
    from app.table_catalog import TABLES

    metastore = Metastore(settings.hive_metastore_uri, settings.hive_database)
    weeks = weeks_apart([partition_values(name)["dt"] for name in metastore.partition_locations("raw_clicks")])
    for table in [t.name for t in TABLES if t.hourly] + [RECONCILIATION]:
        entries = metastore.partitions(table)
        root = Location.parse(metastore.table_location(table))
        for copy in range(1, copies + 1):
            added, stats = {}, {}
            for name, entry in entries.items():
                values = partition_values(name)
                shift = timedelta(weeks=copy * weeks)
                day = (datetime.strptime(values["dt"], DAY_LAYOUT) + shift).strftime(DAY_LAYOUT)
                shifted = "/".join(f"{key}={day if key == 'dt' else value}" for key, value in values.items())
                target = root / f"bench-copy-{copy}" / shifted
                for file in parquet_files(entry.location):
                    file.link_or_copy(target / file.name)
                added[shifted] = str(target)
                if entry.stats is not None:
                    stats[shifted] = entry.stats
            metastore.add_partitions(table, added, stats)
        log.info("%s: %s partitions, %s copies", table, len(entries), copies)


def weeks_apart(days: list[str]) -> int:
    """Whole weeks between copies, so that no copy's days meet another's: more than the data spans."""
    first, last = (datetime.strptime(day, DAY_LAYOUT) for day in (min(days), max(days)))
    return (last - first).days // 7 + 1


def view_runs(settings: Settings, runs: int) -> tuple[ViewCost, ViewCost]:
    whole = measure(settings, runs)
    ten_times(settings)
    return whole, measure(settings, runs, copies=True)


def view_section(whole: ViewCost, larger: ViewCost) -> list[str]:
    def row(label: str, cost: ViewCost) -> str:
        return (
            f"| {label} | {cost.hours:,} | {cost.clicks:,} | {median_of(cost.views):.2f} ({listing(cost.views, 2)}) | "
            f"{median_of(cost.run_checks):.2f} ({listing(cost.run_checks, 2)}) | {cost.full_check:.1f} |"
        )

    view = max(median_of(whole.views), median_of(larger.views))
    return [
        "## 9. What the pipeline view and the check cost",
        "",
        "The tables as the Airflow run above left them (its `check_tables` reconciled every hour), then ten "
        f"times as large: every hourly partition and reconciliation day linked into {COPIES} more copies shifted "
        "by whole weeks and registered in the metastore, and reconciled once by a full check. The view is "
        "`read_state` (every section, as a page load builds it); a run's check is `check_tables` of one hour "
        "(plus the hours changed since their check: none); the full check is every hour, by hand (run first, it "
        "reconciles the copies). The copies repeat the original files' rows, so there the check reports each "
        "file's rows ten times over: its cost is what is measured.",
        "",
        "| tables | hours | raw clicks | view, s (median; runs) | a run's check, s (median; runs) | full check, s |",
        "|---|---:|---:|---|---|---:|",
        row("the shared data set", whole),
        row("ten times larger", larger),
        "",
        f"**View {view:.2f} s at most** (goal: under {VIEW_GOAL_SECONDS:.0f} s on both): "
        + ("met." if view < VIEW_GOAL_SECONDS else "missed."),
        "",
    ]
