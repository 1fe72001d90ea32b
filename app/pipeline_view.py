"""What the pipeline view shows, gathered from the services themselves: Kafka, the ledger, the Hive tables.

Each section is read on its own and carries its own error, so a service that is down turns into a
message on the page while the other sections still show. The Hive tables are read the way any
reader of the tables would: their locations and statistics from the metastore (thrift), a few
columns of the Parquet files there for the charts. Nothing here starts Spark, and the cost grows
with the partitions and days, not with the rows.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from app.hours import hour_key, is_closed, partition_hour, partition_key
from app.metastore import PartitionEntry
from app.parquet_folders import describes, folder, in_parallel, listing_threads, parquet_rows, read_columns
from app.settings import Settings
from app.table_catalog import BY_NAME, TABLE_NAMES, TableKind  # TABLE_NAMES: in the order the page lists them

log = logging.getLogger(__name__)

SERVICE_TIMEOUT = 2.0  # seconds a service may take to answer before the view says it is down
TOP = 10
# tables whose partition folders gain or swap files in place
MUTABLE_FOLDERS = (TableKind.RAW, TableKind.CHECK, TableKind.ERASURE)
T = TypeVar("T")


@dataclass
class Section:
    """One part of the page: its data, or why it could not be read (and how long reading took)."""

    data: Any = None
    error: str | None = None
    seconds: float = 0.0


@dataclass
class TopicState:
    name: str
    partitions: int
    start_offsets: dict[int, int]
    end_offsets: dict[int, int]
    bytes_on_disk: int | None  # of its log segments; known when the broker's log folder is on this machine

    @property
    def records(self) -> int:
        """Offsets between start and end: records plus transaction markers."""
        return sum(self.end_offsets[p] - self.start_offsets.get(p, 0) for p in self.end_offsets)


@dataclass
class KafkaState:
    topics: list[TopicState]
    stream_behind: dict[str, int]  # per data topic: offsets the streaming checkpoint has not reached
    stream_running: dict[str, Any] | None  # the streaming job running on the checkpoint, if any
    checkpoint_batches: bool  # whether the checkpoint has completed any batch yet


@dataclass
class TableState:
    name: str
    rows: int
    partitioned: bool
    partitions: int
    latest_partition: str | None
    location: str


@dataclass
class Charts:
    clicks_per_hour: list[tuple[str, int]] = field(default_factory=list)  # ("2017-10-01T03", clicks)
    hour: str | None = None  # the chosen hour of the charts below
    top_categories: list[tuple[int, int, int]] = field(default_factory=list)  # category, clicks, users
    top_articles: list[tuple[int, int, int]] = field(default_factory=list)  # article, category, clicks
    by_device_group: list[tuple[int, int]] = field(default_factory=list)
    by_referrer_type: list[tuple[int, int]] = field(default_factory=list)
    by_environment: list[tuple[int, int]] = field(default_factory=list)
    reconciliation: list[tuple[str, str, int]] = field(default_factory=list)  # (hour, state, raw clicks)


# the codes the Globo data set documents (its README); other columns are anonymised numbers
ENVIRONMENTS = {1: "Facebook Instant Article", 2: "Mobile App", 3: "AMP (Accelerated Mobile Pages)", 4: "Web"}
DEVICE_GROUPS = {1: "Tablet", 2: "TV", 3: "Empty", 4: "Mobile", 5: "Desktop"}


@dataclass
class PipelineState:
    kafka: Section
    ledger: Section
    tables: Section
    charts: Section


def timed(read: Callable[[], T], describe_failure: Callable[[Exception], str]) -> Section:
    started = time.monotonic()
    try:
        return Section(data=read(), seconds=time.monotonic() - started)
    except Exception as error:  # noqa: BLE001 - any failure of a service becomes the section's message
        log.info("pipeline view: %s", error)
        return Section(error=describe_failure(error), seconds=time.monotonic() - started)


def read_state(settings: Settings, hour: str | None = None) -> PipelineState:
    """Every section of the view; `hour` (like 2017-10-01T03) chooses the hour of the detail charts."""

    from app.kafka_io import KafkaSetupError
    from app.producer.ledger import LedgerReadError

    def kafka_down(error: Exception) -> str:
        if not isinstance(error, (KafkaSetupError, LedgerReadError, OSError)):
            return f"Reading Kafka failed: {type(error).__name__}: {error}"
        return (
            f"Kafka is not reachable at KAFKA_SERVERS={settings.kafka_servers} ({error}). "
            "Start it with `make up`; `make status` shows what runs."
        )

    def metastore_down(error: Exception) -> str:
        if not isinstance(error, OSError):  # ConnectionError and timeouts are OSErrors
            return f"Reading the Hive tables failed: {type(error).__name__}: {error}"
        return (
            f"The Hive Metastore is not reachable at {settings.hive_metastore_uri} ({error}). "
            "Start it with `make up`; `make status` shows what runs."
        )

    metastore = HiveCatalog(settings)
    tables = timed(lambda: read_tables(metastore), metastore_down)
    charts = timed(lambda: read_charts(metastore, hour), metastore_down) if tables.error is None else tables
    kafka = timed(lambda: read_kafka(settings), kafka_down)
    ledger = timed(lambda: read_ledger_rows(settings), kafka_down) if kafka.error is None else kafka
    return PipelineState(kafka=kafka, ledger=ledger, tables=tables, charts=charts)


# --- Kafka -------------------------------------------------------------------------------------


def read_kafka(settings: Settings) -> KafkaState:
    from app.checkpoint import committed_offsets, offsets_behind, running_stream
    from app.kafka_io import project_topics, topic_offsets

    names = [topic.name for topic in project_topics(settings)]
    ends = topic_offsets(settings, names, "latest", SERVICE_TIMEOUT)
    starts = topic_offsets(settings, names, "earliest", SERVICE_TIMEOUT)
    log_dir = settings.state_dir / "kafka" / "data"
    topics = [
        TopicState(
            name=name,
            partitions=len(ends[name]),
            start_offsets=starts.get(name, {}),
            end_offsets=ends[name],
            bytes_on_disk=_bytes_on_disk(log_dir, name, ends[name]) if log_dir.is_dir() else None,
        )
        for name in names
        if name in ends
    ]
    data_topics = {name: ends[name] for name in (settings.kafka_topic, settings.kafka_metadata_topic) if name in ends}
    committed = committed_offsets(settings)
    return KafkaState(topics, offsets_behind(data_topics, committed), running_stream(settings), bool(committed))


def _bytes_on_disk(log_dir: Path, topic: str, partitions: dict[int, int]) -> int:
    total = 0
    for partition in partitions:
        folder = log_dir / f"{topic}-{partition}"
        if folder.is_dir():
            # the segments only: index files are preallocated and say nothing about the data
            total += sum(path.stat().st_size for path in folder.glob("*.log"))
    return total


def read_ledger_rows(settings: Settings) -> list[dict[str, Any]]:
    """The ledger's files, newest first, after the refused files (status `refused`, with the
    reason and what to do), which a user has to act on."""
    from app.producer.ledger import read_ledger_state

    state = read_ledger_state(settings, timeout=SERVICE_TIMEOUT * 2)
    rows = [
        {
            "file": entry.file,
            "kind": entry.kind,
            "version": entry.version,
            "status": entry.status,
            "rows": entry.rows,
            "rejected": entry.rejected,
            "published_at": entry.published_at,
        }
        for entry in state.files.values()
    ]
    refused = [
        {
            "file": refusal.file,
            "kind": "",
            "version": 0,
            "rows": 0,
            "rejected": 0,
            "published_at": "",
            "status": "refused",
            "reason": refusal.reason,
            "fix": refusal.fix,
            "refused_at": refusal.refused_at,
        }
        for refusal in state.refusals.values()
    ]
    newest_first = sorted(rows, key=lambda row: (str(row["published_at"]), str(row["file"])), reverse=True)
    return sorted(refused, key=lambda row: str(row["file"])) + newest_first


# --- Hive tables through the metastore and Parquet ------------------------------------------------


class HiveCatalog:
    """Table and partition locations and statistics from the Hive Metastore (thrift), read once per view."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._entries: dict[str, dict[str, PartitionEntry]] | None = None

    def entries(self) -> dict[str, dict[str, PartitionEntry]]:
        """Per table: partition name ("dt=2017-10-01/hour=3", or "" unpartitioned) -> folder and statistics."""
        if self._entries is None:
            self._entries = self._read_entries()
        return self._entries

    def locations(self) -> dict[str, dict[str, str]]:
        """Per table: partition name -> folder."""
        return {
            name: {partition: entry.location for partition, entry in partitions.items()}
            for name, partitions in self.entries().items()
        }

    def _read_entries(self) -> dict[str, dict[str, PartitionEntry]]:
        from app.metastore import Metastore

        metastore = Metastore(self.settings.hive_metastore_uri, self.settings.hive_database, SERVICE_TIMEOUT)
        existing = metastore.tables()
        return {name: metastore.partitions(name) for name in TABLE_NAMES if name in existing}


def trusted_as_recorded(entry: PartitionEntry, kind: TableKind) -> bool:
    """Whether a partition's recorded statistics are taken without looking at its folder: a
    partition written whole into a folder of its own (aggregates, daily tables, `articles`) gets
    its figures in the same metastore call as its folder."""
    return entry.stats is not None and kind not in MUTABLE_FOLDERS


def partition_rows(entry: PartitionEntry, kind: TableKind) -> int:
    """A partition's rows from the statistics its writer recorded in the metastore, when they are
    `trusted_as_recorded`. A raw partition's folder gains files between its statistics updates (and
    a crash can fall between the rename and the update): its figures are taken when one listing of
    the folder finds the files and bytes they name, else the footers are read. So is a partition
    without statistics (written by an older version, or by hand)."""
    stats = entry.stats
    if stats is not None and (trusted_as_recorded(entry, kind) or describes(stats, entry.location)):
        return stats.rows
    return parquet_rows(entry.location)


def read_tables(metastore: HiveCatalog) -> list[TableState]:
    """Each table's rows, partitions and latest partition: one metastore call per table, one listing
    per raw partition, footers only where no statistics can be trusted. Only the partitions whose
    folders must be looked at go to the reading threads: handing them the others as well cost more
    than the listings (9,000 partitions at ten times the shared data set)."""
    entries = metastore.entries()
    every = [(entry, BY_NAME[name].kind) for name, partitions in entries.items() for entry in partitions.values()]
    looked_at = [item for item in every if not trusted_as_recorded(*item)]
    threads = listing_threads([entry.location for entry, _ in looked_at])
    listed = iter(in_parallel(lambda item: partition_rows(*item), looked_at, threads))
    rows = iter(
        entry.stats.rows if entry.stats is not None and trusted_as_recorded(entry, kind) else next(listed)
        for entry, kind in every
    )
    tables = []
    for name, partitions in entries.items():
        names = sorted((p for p in partitions if p), key=partition_hour)
        tables.append(
            TableState(
                name=name,
                rows=sum(next(rows) for _ in partitions),
                partitioned="" not in partitions,
                partitions=len(names),
                latest_partition=names[-1] if names else None,
                location=str(folder(partitions[names[-1]].location)) if names else "",
            )
        )
    return tables


def read_charts(metastore: HiveCatalog, hour: str | None, now: datetime | None = None) -> Charts:
    """The hour-level figures from `hour_reconciliation` (one small file per day) for the hours whose
    aggregates are still the versions it checked, the other hours' from their `category_hourly`
    partitions, and only the chosen hour's files for the detail charts: the cost grows with the
    days and the hours changed since their check, not with the clicks."""
    from app.reconciliation import AGGREGATES, rows_of_days, versions_of

    locations = metastore.locations()
    charts = Charts()
    moment = now or datetime.now(UTC)  # an hour that is not over yet is not shown: no run has spoken for it
    category_hourly = {
        name: where
        for name, where in locations.get("category_hourly", {}).items()
        if is_closed(partition_hour(name), moment)
    }
    columns = ["hour", "state", "raw_clicks", "category_hourly_clicks", "aggregate_versions"]
    reconciled = [
        (hour, row)
        for hour, row in rows_of_days(locations.get("hour_reconciliation", {}), columns).items()
        if is_closed(hour, moment)
    ]
    charts.reconciliation = [(hour_key(hour), str(row["state"]), int(row["raw_clicks"])) for hour, row in reconciled]
    aggregates = {
        table: {partition_hour(name): location for name, location in locations.get(table, {}).items()}
        for table in AGGREGATES
    }
    per_hour = {
        hour_key(hour): int(row["category_hourly_clicks"])
        for hour, row in reconciled
        if row["category_hourly_clicks"]
        and row["aggregate_versions"] == versions_of({table: aggregates[table].get(hour) for table in AGGREGATES})
    }
    unchecked = {name: location for name, location in category_hourly.items() if partition_key(name) not in per_hour}
    clicks = in_parallel(lambda location: sum(read_columns(location, ["clicks"])["clicks"]), list(unchecked.values()))
    per_hour.update({partition_key(name): total for name, total in zip(unchecked, clicks, strict=True)})
    charts.clicks_per_hour = sorted(per_hour.items())
    if not per_hour:
        return charts
    chosen = hour if hour in per_hour else max(per_hour, key=lambda key: (per_hour[key], key))
    charts.hour = chosen
    partition = next(name for name in category_hourly if partition_key(name) == chosen)

    categories = read_columns(category_hourly[partition], ["category_id", "clicks", "users"])
    charts.top_categories = sorted(
        zip(categories["category_id"], categories["clicks"], categories["users"], strict=True),
        key=lambda row: (-row[1], row[0]),
    )[:TOP]
    if partition in locations.get("article_hourly", {}):
        articles = read_columns(locations["article_hourly"][partition], ["article_id", "category_id", "clicks"])
        charts.top_articles = sorted(
            zip(articles["article_id"], articles["category_id"], articles["clicks"], strict=True),
            key=lambda row: (-row[2], row[0]),
        )[:TOP]
    if partition in locations.get("context_hourly", {}):
        context = read_columns(
            locations["context_hourly"][partition], ["click_device_group", "click_referrer_type", "clicks"]
        )
        charts.by_device_group = _sum_by(context["click_device_group"], context["clicks"])
        charts.by_referrer_type = _sum_by(context["click_referrer_type"], context["clicks"])
        environments = read_columns(locations["context_hourly"][partition], ["click_environment", "clicks"])
        charts.by_environment = _sum_by(environments["click_environment"], environments["clicks"])
    return charts


def _sum_by(keys: list[int], values: list[int]) -> list[tuple[int, int]]:
    totals: dict[int, int] = {}
    for key, value in zip(keys, values, strict=True):
        totals[key] = totals.get(key, 0) + value
    return sorted(totals.items())
