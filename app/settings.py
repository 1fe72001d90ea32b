"""The one reader of the environment: every setting of clickstream, its default and its meaning.

Values come, in order of precedence, from the process environment, then from the repository's
git-ignored `.env.local` (the place for secrets on a workstation), then from its tracked `.env`
(no secrets: a secret found there is refused), then from the defaults below. Old names of the
original project keep working as aliases (for example `SPARK_SERVER_HOST=spark` still selects
`spark://spark:7077`). A bad value fails early with a `SettingsError` that names the variable and
quotes the value.

`python -m app.settings` prints the resolved settings; `--markdown` prints the table the README
carries and `--update-readme` rewrites it there.
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from dataclasses import field as dataclass_field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from app.storage import Location, LocationError, S3Access, know_s3, know_web_port

REPO_ROOT = Path(__file__).resolve().parent.parent


S3_BUCKET = "clickstream"  # the bucket of `CLICKSTREAM_STORAGE=s3`


def s3_credentials(settings: Settings) -> tuple[str, str]:
    """(access key, secret key) of the S3 store: `S3_ACCESS_KEY`/`S3_SECRET_KEY`, or the local
    SeaweedFS's, generated when it first starts (`app/runtime/seaweedfs.py`)."""
    if settings.s3_access_key or settings.s3_endpoint:
        return settings.s3_access_key, settings.s3_secret_key
    from app.s3_keys import local_credentials

    return local_credentials(settings.state_dir)


class SettingsError(ValueError):
    """A setting has a value that cannot be used; the message names the variable."""


def _resolve_path(raw: str) -> Path:
    path = Path(raw).expanduser()
    return path if path.is_absolute() else (REPO_ROOT / path)


V = TypeVar("V")


def _converted(variable: str, raw: str, convert: Callable[[str], V], expected: str) -> V:
    """`convert(raw)`, or a SettingsError naming the variable, what it expects and what it got."""
    try:
        return convert(raw)
    except ValueError:
        raise SettingsError(f"{variable}: expected {expected}, got {raw!r}") from None


N = TypeVar("N", int, float)


def _number(
    convert: Callable[[str], N], expected: str, allowed: Callable[[N], bool], rule: str
) -> Callable[[str, str], N]:
    """A parser of a number that `convert` reads and `allowed` accepts; an error says `rule`."""

    def parse(variable: str, raw: str) -> N:
        value = _converted(variable, raw, convert, expected)
        if not allowed(value):
            raise SettingsError(f"{variable}: {rule}, got {value}")
        return value

    return parse


_port = _number(int, "a port number", lambda port: 0 < port < 65536, "port must be between 1 and 65535")
_non_negative_float = _number(float, "a number of seconds", lambda seconds: seconds >= 0, "must not be negative")
_positive_float = _number(float, "a number of seconds", lambda seconds: seconds > 0, "must be more than 0 seconds")
_positive_int = _number(int, "a whole number", lambda count: count >= 1, "must be at least 1")
_count_or_auto = _number(int, "a whole number", lambda count: count >= 0, "must not be negative")


def _spark_master(variable: str, raw: str) -> str:
    if variable == "SPARK_SERVER_HOST":
        return f"spark://{raw}:7077"
    if not (raw.startswith("local") or raw.startswith("spark://") or raw in ("yarn",) or raw.startswith("k8s://")):
        raise SettingsError(f"{variable}: expected local[*], spark://host:port, yarn or k8s://..., got {raw!r}")
    return raw


def _starting_offsets(variable: str, raw: str) -> str:
    if raw not in ("earliest", "latest"):
        raise SettingsError(f"{variable}: expected earliest or latest, got {raw!r}")
    return raw


def _utc_time(variable: str, raw: str) -> datetime:
    """An ISO date or date-time; UTC unless it names its zone."""
    parsed = _converted(variable, raw, datetime.fromisoformat, "an ISO date or date-time such as 2000-01-01")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _webhook_url(variable: str, raw: str) -> str:
    """Empty, or an http(s) URL with a host; the error never repeats the URL (it is a secret)."""
    scheme, _, rest = raw.partition("://")
    if raw and (scheme not in ("http", "https") or not rest.split("/", 1)[0]):
        raise SettingsError(f"{variable}: expected empty or an http(s)://host/... URL (the value is not shown)")
    return raw


def _kafka_servers(variable: str, raw: str) -> str:
    for entry in raw.split(","):
        host, sep, port = entry.strip().rpartition(":")
        if not sep or not host:
            raise SettingsError(f"{variable}: expected host:port[,host:port], got {raw!r}")
        _port(variable, port)
    return raw


def _cron(variable: str, raw: str) -> str:
    """A cron expression of five fields or a preset such as @hourly (checked by the library Airflow uses)."""
    from croniter import croniter

    if not croniter.is_valid(raw):
        raise SettingsError(f"{variable}: expected a cron expression such as '30 * * * *' or @hourly, got {raw!r}")
    return raw


def _text(variable: str, raw: str) -> str:
    return raw


def _path(variable: str, raw: str) -> Path:
    """A folder or file on this machine's file system (a path, or a `file://` URI); a relative one
    starts at the repository. Any other URI is refused by name: it would otherwise become a local
    folder called `hdfs:`."""
    location = _location(variable, raw)
    if not location.is_local:
        raise SettingsError(f"{variable}: {raw!r} must be on this machine's file system (a path or a file:// URI)")
    return location.local_path


def _location(variable: str, raw: str) -> Location:
    """Where table data lives: a local folder (a path, or a `file://` URI; a relative path starts at
    the repository), a folder of an HDFS (`hdfs://namenode:8020/path`) or of an S3 bucket
    (`s3a://bucket/path`); any other scheme is refused
    by name, never turned into a local folder called `s3a:`."""
    try:
        return Location.parse(raw if "://" in raw else str(Path(raw).expanduser()), relative_to=REPO_ROOT)
    except LocationError as error:
        raise SettingsError(f"{variable}: {error}") from None


# librdkafka's properties that take a Python function (the Airflow Kafka provider's list)
KAFKA_CALLBACK_PROPERTIES = ("error_cb", "throttle_cb", "stats_cb", "log_cb", "oauth_cb", "on_commit")


def kafka_properties(variable: str, raw: str) -> str:
    """A JSON object of librdkafka properties (text, numbers or booleans), kept as normalised JSON."""
    if not raw.strip():
        return ""
    try:
        properties = json.loads(raw)
    except ValueError as error:
        raise SettingsError(f"{variable}: not JSON ({error})") from None
    if not isinstance(properties, dict):
        raise SettingsError(f"{variable}: expected a JSON object of Kafka client properties, got {raw[:80]!r}")
    callbacks = sorted(set(properties) & set(KAFKA_CALLBACK_PROPERTIES))
    if callbacks:
        raise SettingsError(
            f"{variable}: {', '.join(callbacks)}: Python callbacks are not taken (the Spark jobs' Java client could "
            "not use them); for OAuth use sasl.oauthbearer.method=oidc and its properties"
        )
    odd = sorted(key for key, value in properties.items() if not isinstance(value, str | int | float | bool))
    if odd:
        raise SettingsError(f"{variable}: {', '.join(odd)}: a property takes text, a number or true/false")
    return json.dumps(properties, sort_keys=True)


def _one_of(*choices: str) -> Callable[[str, str], str]:
    def parse(variable: str, raw: str) -> str:
        if raw not in choices:
            raise SettingsError(f"{variable}: expected one of {', '.join(choices)}, got {raw!r}")
        return raw

    return parse


def _s3_endpoint(variable: str, raw: str) -> str:
    if raw and not raw.startswith(("http://", "https://")):
        raise SettingsError(f"{variable}: expected empty (the local SeaweedFS) or an http(s):// URL, got {raw!r}")
    return raw.rstrip("/")


def _metastore_db_url(variable: str, raw: str) -> str:
    if raw and raw != "derby" and not raw.startswith(("jdbc:postgresql://", "jdbc:derby:")):
        raise SettingsError(
            f"{variable}: expected empty (the local PostgreSQL), jdbc:postgresql://host:port/database, "
            f"or derby, got {raw!r}"
        )
    return raw


def _database_url(variable: str, raw: str) -> str:
    """A SQLAlchemy URL of PostgreSQL or MySQL; the error names its scheme, never its password."""
    scheme = raw.partition("://")[0] if "://" in raw else ""
    if raw and scheme.partition("+")[0] not in ("postgresql", "mysql"):
        raise SettingsError(
            f"{variable}: expected empty (the local PostgreSQL) or postgresql+psycopg2://user:password@host:port/"
            f"database (or mysql://...), got a URL of scheme {scheme or '(none)'!r}"
        )
    return raw


@dataclass(frozen=True)
class SettingSpec:
    """How one field of `Settings` is read: its variable, default, old names, meaning and parser
    (`(variable, raw text) -> value`, raising SettingsError naming the variable)."""

    field: str
    variable: str
    default: str
    help: str
    aliases: tuple[str, ...] = ()
    secret: bool = False
    parser: Callable[[str, str], Any] = _text


SETTING = "clickstream.setting"  # the key of a Settings field's metadata that holds its declaration


def setting(
    variable: str,
    default: str,
    help: str,
    *,
    parser: Callable[[str, str], Any] = _text,
    aliases: tuple[str, ...] = (),
    secret: bool = False,
) -> Any:
    """A field of `Settings`, declared once: the variable that sets it (and its old names), its
    default (`{state}` stands for the state folder, `{store}` for `CLICKSTREAM_STORAGE`'s root), what
    it means, how its text is read, and whether it is a secret. `SPECS`, the loader and the README's
    table derive from these."""
    return dataclass_field(metadata={SETTING: (variable, default, help, aliases, secret, parser)})


@dataclass(frozen=True)
class Settings:
    """Every setting of clickstream, resolved and checked. Build it with `load_settings()`."""

    def __post_init__(self) -> None:
        # readers of an hdfs:// location reach its NameNode's WebHDFS at HDFS_NAMENODE_HTTP_PORT
        for location in (self.parquet_destination_path, self.check_point_location, self.hive_warehouse_dir):
            if location.scheme == "hdfs":
                know_web_port(location.authority, self.hdfs_namenode_http_port)
            if location.scheme == "s3a":
                # readers of an s3a:// location reach S3_ENDPOINT, with its keys (looked up when first used)
                know_s3(self.s3_access)

    # where things live
    state_dir: Path = setting(
        "CLICKSTREAM_STATE_DIR",
        ".state",
        "Folder for all runtime state: service data, logs, pids, the lake, checkpoints, the Hive warehouse.",
        parser=_path,
    )
    # Kafka
    kafka_servers: str = setting(
        "KAFKA_SERVERS",
        "127.0.0.1:9092",
        "Kafka bootstrap servers (`host:port[,host:port]`). The local broker listens on the port of the first entry.",
        parser=_kafka_servers,
    )
    kafka_controller_port: int = setting(
        "KAFKA_CONTROLLER_PORT",
        "9093",
        "Port of the local broker's KRaft controller listener.",
        parser=_port,
    )
    kafka_topic: str = setting(
        "KAFKA_TOPIC",
        "click_stream",
        "Topic of the click events.",
    )
    kafka_metadata_topic: str = setting(
        "KAFKA_METADATA_TOPIC",
        "click_stream_metadata",
        "Topic of the article metadata (compacted, keyed by `article_id`).",
    )
    kafka_consumer_group: str = setting(
        "KAFKA_CONSUMER_GROUP",
        "clickstream",
        "Consumer group of the project's own Kafka readers.",
    )
    kafka_ledger_topic: str = setting(
        "KAFKA_LEDGER_TOPIC",
        "click_stream_ledger",
        "Compacted topic recording each published file (committed in the file's own transaction).",
    )
    kafka_rejects_topic: str = setting(
        "KAFKA_REJECTS_TOPIC",
        "click_stream_rejects",
        "Topic of the rows that failed the schema, with file, line, reason and raw text.",
    )
    kafka_topic_partitions: int = setting(
        "KAFKA_TOPIC_PARTITIONS",
        "3",
        "Partitions of the data topics when the producer creates them.",
        parser=_positive_int,
    )
    kafka_clicks_retention_hours: int = setting(
        "KAFKA_CLICKS_RETENTION_HOURS",
        "168",
        (
            "How long the clicks topic and the rejects topic keep a record (7 days), when the producer "
            "creates them: a forgotten user's clicks stay in Kafka at most this long (the tables refuse "
            "them at once). Longer than the longest stop of the pipeline, or undrained clicks are lost."
        ),
        parser=_positive_int,
    )
    kafka_replication_factor: int = setting(
        "KAFKA_REPLICATION_FACTOR",
        "1",
        "Replication factor of the topics the producer creates.",
        parser=_positive_int,
    )
    kafka_min_insync_replicas: int = setting(
        "KAFKA_MIN_INSYNC_REPLICAS",
        "1",
        "`min.insync.replicas` of the topics the producer creates.",
        parser=_positive_int,
    )
    kafka_broker_heap: str = setting(
        "KAFKA_BROKER_HEAP",
        "512m",
        "Java heap of the local broker.",
    )
    kafka_security_protocol: str = setting(
        "KAFKA_SECURITY_PROTOCOL",
        "PLAINTEXT",
        (
            "How clients reach Kafka: `PLAINTEXT`, `SASL_PLAINTEXT` or `SASL_SSL` (SCRAM login; TLS with "
            "`SASL_SSL`). The local broker's client listener uses the same, with `KAFKA_SASL_USERNAME` as its"
            " user."
        ),
        parser=_one_of("PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL"),
    )
    kafka_sasl_mechanism: str = setting(
        "KAFKA_SASL_MECHANISM",
        "SCRAM-SHA-512",
        "SASL mechanism: `SCRAM-SHA-512` or `SCRAM-SHA-256`.",
        parser=_one_of("SCRAM-SHA-512", "SCRAM-SHA-256"),
    )
    kafka_sasl_username: str = setting(
        "KAFKA_SASL_USERNAME",
        "",
        "Kafka user (SASL).",
    )
    kafka_sasl_password: str = setting(
        "KAFKA_SASL_PASSWORD",
        "",
        "Password of the Kafka user (SASL).",
        secret=True,
    )
    kafka_ssl_ca_location: str = setting(
        "KAFKA_SSL_CA_LOCATION",
        "",
        "CA certificate (PEM) the clients trust for `SASL_SSL`; empty: the system's CAs.",
    )
    # a JSON object of librdkafka properties, or empty
    kafka_client_config: str = setting(
        "KAFKA_CLIENT_CONFIG",
        "",
        (
            "More librdkafka properties for every Kafka client of the project (producer, consumers, admin), "
            'as a JSON object such as `{"client.rack": "eu-1"}`; they win over the ones above. The Airflow '
            "tasks take every property of the `kafka_default` connection this way. Python callbacks "
            "(`oauth_cb`, ...) are refused: the Spark jobs could not use them; OAuth works through "
            "`sasl.oauthbearer.method`."
        ),
        parser=kafka_properties,
        secret=True,
    )
    kafka_broker_ssl_certificate: str = setting(
        "KAFKA_BROKER_SSL_CERTIFICATE",
        "",
        "The local broker's TLS certificate chain (PEM), for `SASL_SSL`.",
    )
    kafka_broker_ssl_key: str = setting(
        "KAFKA_BROKER_SSL_KEY",
        "",
        "The local broker's TLS private key (PEM, PKCS#8, not encrypted), for `SASL_SSL`.",
    )
    # producer
    producer_data_root_directory: Path = setting(
        "PRODUCER_DATA_ROOT_DIRECTORY",
        "app/data",
        "Folder the producer reads CSV files from (relative paths start at the repository).",
        parser=_path,
    )
    producer_click_csv_data_prefix: str = setting(
        "PRODUCER_CLICK_CSV_DATA_PREFIX",
        "clicks_hour_",
        "File name prefix of click files.",
    )
    producer_click_metadata_csv_data_prefix: str = setting(
        "PRODUCER_CLICK_METADATA_CSV_DATA_PREFIX",
        "articles_metadata",
        "File name prefix of article metadata files.",
    )
    csv_suffix: str = setting(
        "CSV_SUFFIX",
        ".csv",
        "File name suffix of data files (`.gz` after it is accepted too).",
    )
    producer_transactional_id: str = setting(
        "PRODUCER_TRANSACTIONAL_ID",
        "clickstream-producer",
        "Kafka transactional id of the producer; a new producer with the same id fences an old one.",
    )
    producer_processes: int = setting(
        "PRODUCER_PROCESSES",
        "0",
        "Producer processes publishing files side by side in a run with at least 16 MiB to publish, not "
        "paced (each file still one transaction; the shards use `<PRODUCER_TRANSACTIONAL_ID>-shard-<n>`); "
        "0: one per core, at most 4.",
        parser=_count_or_auto,
    )
    producer_file_stable_seconds: float = setting(
        "PRODUCER_FILE_STABLE_SECONDS",
        "2",
        "A file modified less than this many seconds ago is still being written and is skipped.",
        parser=_non_negative_float,
    )
    producer_item_wait_time: float = setting(
        "PRODUCER_ITEM_WAIT_TIME",
        "0",
        "Seconds from one message to the next (the producer keeps to that pace); 0 sends at full speed.",
        parser=_non_negative_float,
    )
    # event-time sanity: clicks outside these bounds are set aside (rejects topic, quarantine table)
    earliest_event_time: datetime = setting(
        "CLICKSTREAM_EARLIEST_EVENT_TIME",
        "2000-01-01",
        "A click before this UTC date (or ISO date-time) is set aside as implausible.",
        parser=_utc_time,
    )
    max_future_seconds: float = setting(
        "CLICKSTREAM_MAX_FUTURE_SECONDS",
        "86400",
        (
            "A click later than the time it is published plus this many seconds is set aside (a replay of "
            "history is measured against the publishing clock, so it passes)."
        ),
        parser=_non_negative_float,
    )
    session_start_tolerance_seconds: float = setting(
        "CLICKSTREAM_SESSION_START_TOLERANCE_SECONDS",
        "300",
        "A click earlier than its own `session_start` by more than this many seconds is set aside.",
        parser=_non_negative_float,
    )
    max_session_seconds: float = setting(
        "CLICKSTREAM_MAX_SESSION_SECONDS",
        "2592000",
        (
            "A click later than its own `session_start` by more than this many seconds (30 days; the "
            "longest session of the Globo data set lasts 555.5 hours) is set aside. It bounds what "
            "recomputing an old hour reads: the raw hours from its sessions' start to this much later."
        ),
        parser=_non_negative_float,
    )
    erasure_key: str = setting(
        "CLICKSTREAM_ERASURE_KEY",
        "",
        (
            "Secret key of the hash that stands for a forgotten user in the `erasures` table (never the "
            "user id); empty: one generated on first use into `<state>/erasure/key`. On a cluster, the "
            "same value on every host."
        ),
        secret=True,
    )
    # Spark
    spark_master: str = setting(
        "SPARK_MASTER_URL",
        "local[*]",
        (
            "Spark master: `local[*]`, or `spark://host:7077` for a standalone cluster. The old "
            "`SPARK_SERVER_HOST=host` means `spark://host:7077`."
        ),
        parser=_spark_master,
        aliases=("SPARK_SERVER_HOST",),
    )
    kafka_starting_offsets: str = setting(
        "KAFKA_STARTING_OFFSETS",
        "earliest",
        "Where a new streaming checkpoint starts reading the topics: `earliest` or `latest`.",
        parser=_starting_offsets,
    )
    spark_max_offsets_per_trigger: int = setting(
        "SPARK_MAX_OFFSETS_PER_TRIGGER",
        "500000",
        "Most Kafka records one micro-batch of the streaming job reads.",
        parser=_positive_int,
    )
    spark_trigger_interval: str = setting(
        "SPARK_TRIGGER_INTERVAL",
        "30 seconds",
        "Micro-batch interval of the long-running streaming job.",
    )
    raw_compaction_interval_seconds: float = setting(
        "RAW_COMPACTION_INTERVAL_SECONDS",
        "600",
        (
            "Seconds between two merges, by a long-running stream, of the closed partitions of the raw tables"
            " into one file each (a drain merges them when it ends; files of partitions still filling are "
            "merged 8 at a time)."
        ),
        parser=_non_negative_float,
    )
    hive_database: str = setting(
        "HIVE_DATABASE",
        "clickstream",
        "Hive database of the raw and aggregate tables.",
    )
    spark_ui_port: int = setting(
        "SPARK_UI_PORT",
        "4040",
        "Port of the Spark application UI.",
        parser=_port,
    )
    spark_driver_memory: str = setting(
        "SPARK_DRIVER_MEMORY",
        "1g",
        "Memory of each Spark driver.",
    )
    spark_driver_java_options: str = setting(
        "SPARK_DRIVER_JAVA_OPTIONS",
        "",
        (
            "More JVM options for every Spark driver, after the project's own (for example "
            "`-XX:TieredStopAtLevel=1`, a quicker start for short jobs, which the tests use)."
        ),
    )
    spark_cluster_workers: int = setting(
        "SPARK_CLUSTER_WORKERS",
        "1",
        (
            "Workers of the local Spark standalone cluster (`python -m app.runtime up spark-cluster`, master "
            "at `SPARK_MASTER_URL=spark://127.0.0.1:7077`)."
        ),
        parser=_positive_int,
    )
    spark_cluster_worker_memory: str = setting(
        "SPARK_CLUSTER_WORKER_MEMORY",
        "2g",
        "Memory each worker of the local Spark cluster offers its executors.",
    )
    spark_history_port: int = setting(
        "SPARK_HISTORY_PORT",
        "18080",
        "Port of the Spark History Server: the Spark UI of every finished and running job.",
        parser=_port,
    )
    spark_thrift_port: int = setting(
        "SPARK_THRIFT_PORT",
        "10000",
        "Port of the Spark Thrift (JDBC) server that `make sql` starts for SQL on the Hive tables.",
        parser=_port,
    )
    clickstream_storage: str = setting(
        "CLICKSTREAM_STORAGE",
        "local",
        (
            "Where the tables and checkpoints live unless their own settings say: `local` (`<store>` is the "
            "state folder), `hdfs` (`<store>` is `hdfs://<BIND_HOST>:<HDFS_NAMENODE_PORT>/clickstream`, the "
            "local HDFS, which `make up` then starts) or `s3` (`<store>` is `s3a://clickstream`, a bucket of "
            "`S3_ENDPOINT`: by default the local SeaweedFS, which `make up` then starts)."
        ),
        parser=_one_of("local", "hdfs", "s3"),
    )
    parquet_destination_path: Location = setting(
        "PARQUET_DESTINATION_PATH",
        "{store}/lake",
        (
            "Root of the raw Parquet tables: a folder (relative paths start at the repository), a `file://` "
            "URI, `hdfs://namenode:8020/path` or `s3a://bucket/path`."
        ),
        parser=_location,
    )
    check_point_location: Location = setting(
        "CHECK_POINT_LOCATION",
        "{store}/checkpoints",
        "Root of the streaming checkpoints: a folder, a `file://` URI, `hdfs://...` or `s3a://...`.",
        parser=_location,
    )
    # Hive Metastore
    hive_metastore_port: int = setting(
        "HIVE_METASTORE_PORT",
        "9083",
        "Port of the Hive Metastore thrift service.",
        parser=_port,
    )
    hive_warehouse_dir: Location = setting(
        "HIVE_WAREHOUSE_DIR",
        "{store}/warehouse",
        (
            "Root of the Hive tables the pipeline derives (`<database>.db` below it): a folder, a `file://` "
            "URI, `hdfs://...` or `s3a://...`."
        ),
        parser=_location,
    )
    hive_metastore_heap: str = setting(
        "HIVE_METASTORE_HEAP",
        "512m",
        "Java heap of the metastore service.",
    )
    s3_endpoint: str = setting(
        "S3_ENDPOINT",
        "",
        (
            "The S3 store of `s3a://` locations (`https://s3.eu-west-1.amazonaws.com`, `http://minio:9000`); "
            "empty: the local SeaweedFS on `S3_PORT`, which `make up` starts when a location is on it. "
            "Requests name the bucket in the path."
        ),
        parser=_s3_endpoint,
    )
    s3_port: int = setting(
        "S3_PORT",
        "8333",
        "Port of the local SeaweedFS's S3 API (its other ports are drawn at start).",
        parser=_port,
    )
    s3_region: str = setting("S3_REGION", "us-east-1", "The S3 store's region (signed into every request).")
    s3_access_key: str = setting(
        "S3_ACCESS_KEY",
        "",
        (
            "Access key of the S3 store (in `.env.local`); empty: the local SeaweedFS's, generated once and "
            "kept in its state folder."
        ),
        secret=True,
    )
    s3_secret_key: str = setting(
        "S3_SECRET_KEY",
        "",
        "Secret key of the S3 store (in `.env.local`); empty: the local SeaweedFS's.",
        secret=True,
    )
    hdfs_namenode_port: int = setting(
        "HDFS_NAMENODE_PORT",
        "8020",
        "Port of the local HDFS NameNode (`python -m app.runtime up hdfs`): the file system `hdfs://127.0.0.1:8020`.",
        parser=_port,
    )
    hdfs_namenode_http_port: int = setting(
        "HDFS_NAMENODE_HTTP_PORT",
        "9870",
        (
            "Port of the HDFS NameNode's web UI, JMX and WebHDFS: the local one's, and how readers outside "
            "Spark reach any `hdfs://` location."
        ),
        parser=_port,
    )
    hdfs_heap: str = setting(
        "HDFS_HEAP",
        "384m",
        "Java heap of each local HDFS daemon (the NameNode and the DataNode).",
    )
    hive_metastore_host: str = setting(
        "HIVE_METASTORE_HOST",
        "",
        (
            "Host of the Hive Metastore the Spark jobs and the pipeline view use; empty: the local one "
            "(`CLICKSTREAM_BIND_HOST`). A shared metastore elsewhere: its host name."
        ),
    )
    hive_metastore_db_url: str = setting(
        "HIVE_METASTORE_DB_URL",
        "",
        (
            "The metastore's database; empty: database `metastore` of the local PostgreSQL (`POSTGRES_PORT`, "
            "its own role and generated password). Another PostgreSQL server: "
            "`jdbc:postgresql://host:5432/metastore` with `HIVE_METASTORE_DB_USER`/`_PASSWORD`. `derby`: "
            "Derby in `<state>/metastore` (a fallback for one process; no PostgreSQL needed)."
        ),
        parser=_metastore_db_url,
    )
    hive_metastore_db_user: str = setting(
        "HIVE_METASTORE_DB_USER",
        "hive",
        "User of the metastore's database.",
    )
    hive_metastore_db_password: str = setting(
        "HIVE_METASTORE_DB_PASSWORD",
        "",
        "Password of the metastore's database (PostgreSQL).",
        secret=True,
    )
    # Airflow
    airflow_api_port: int = setting(
        "AIRFLOW_API_PORT",
        "8080",
        "Port of the Airflow web UI and REST API.",
        parser=_port,
    )
    airflow_admin_user: str = setting(
        "AIRFLOW_ADMIN_USER",
        "admin",
        "User name of the Airflow login.",
    )
    airflow_admin_password: str = setting(
        "AIRFLOW_ADMIN_PASSWORD",
        "",
        (
            "Password of the Airflow login; empty: one is generated on first start and kept in "
            "`<state>/airflow/passwords.json`."
        ),
        secret=True,
    )
    airflow_parallelism: int = setting(
        "AIRFLOW_PARALLELISM",
        "4",
        "Task slots of the Airflow LocalExecutor, and of each Celery worker (small for a 2-core machine).",
        parser=_positive_int,
    )
    airflow_executor: str = setting(
        "AIRFLOW_EXECUTOR",
        "LocalExecutor",
        (
            "How Airflow runs tasks: `LocalExecutor` (on the scheduler's host) or `CeleryExecutor` (on Celery "
            "workers, through Redis; `make up` then starts Redis and `AIRFLOW_CELERY_WORKERS` workers)."
        ),
        parser=_one_of("LocalExecutor", "CeleryExecutor"),
    )
    airflow_celery_workers: int = setting(
        "AIRFLOW_CELERY_WORKERS",
        "2",
        "Celery workers `make up` starts on this host with the CeleryExecutor (0: workers run on other hosts).",
        parser=_count_or_auto,
    )
    airflow_celery_broker_url: str = setting(
        "AIRFLOW_CELERY_BROKER_URL",
        "",
        (
            "The CeleryExecutor's queue for workers on other hosts (`redis://:password@host1:6379/0`, in "
            "`.env.local`); empty: the local Redis that `make up` starts."
        ),
        secret=True,
    )
    pipeline_locks: str = setting(
        "PIPELINE_LOCKS",
        "auto",
        (
            "Where the streaming job's lock on its checkpoint and the reconciliation's lock live: `file` "
            "(`flock`; writers on one host), `postgres` (advisory locks in Airflow's database, seen by every "
            "host that reaches it), `auto`: `postgres` with the CeleryExecutor, else `file`."
        ),
        parser=_one_of("auto", "file", "postgres"),
    )
    redis_port: int = setting(
        "REDIS_PORT",
        "6379",
        "Port of the local Redis, the CeleryExecutor's queue (started by `make up` with the CeleryExecutor).",
        parser=_port,
    )
    airflow_sensor_poke_seconds: float = setting(
        "AIRFLOW_SENSOR_POKE_SECONDS",
        "30",
        "How often a scheduled `clickstream_hourly` run looks for new files while it waits.",
        parser=_positive_float,
    )
    airflow_sensor_timeout_seconds: float = setting(
        "AIRFLOW_SENSOR_TIMEOUT_SECONDS",
        "600",
        "How long a scheduled `clickstream_hourly` run waits for a new file before it is skipped.",
        parser=_positive_float,
    )
    airflow_catch_up_schedule: str = setting(
        "AIRFLOW_CATCH_UP_SCHEDULE",
        "30 * * * *",
        "When `clickstream_catch_up` looks for days whose 24 hours are balanced but whose daily tables "
        "are missing or older than their hours (a cron expression, UTC; half past every hour by default).",
        parser=_cron,
    )
    quiet_gap_max_hours: int = setting(
        "QUIET_GAP_MAX_HOURS",
        "24",
        "The longest gap without clicks, between two hours with clicks, whose hours count as quiet "
        "(checked as `empty`, so their day can be built); a longer gap is taken as missing data and "
        "waits for a run that covers it.",
        parser=_count_or_auto,
    )
    airflow_database_url: str = setting(
        "AIRFLOW_DATABASE_URL",
        "",
        (
            "Airflow's metadata database (a SQLAlchemy URL); empty: database `airflow` of the local "
            "PostgreSQL (`POSTGRES_PORT`, its own role and generated password). Another server: "
            "`postgresql+psycopg2://user:password@host:5432/airflow` (or MySQL)."
        ),
        parser=_database_url,
        secret=True,
    )
    # the local PostgreSQL
    postgres_port: int = setting(
        "POSTGRES_PORT",
        "5433",
        (
            "Port of the local PostgreSQL server `make up` starts (Debian's package, data in "
            "`<state>/postgres`) for the databases whose URL is empty (`AIRFLOW_DATABASE_URL`, "
            "`HIVE_METASTORE_DB_URL`)."
        ),
        parser=_port,
    )
    alert_webhook_url: str = setting(
        "ALERT_WEBHOOK_URL",
        "",
        (
            "URL that gets a short JSON message (DAG, run, task, reason, link) for every task of the DAGs "
            "that fails for good; empty: none is sent. A secret (the path of a webhook is its password): logs"
            " show only its host."
        ),
        parser=_webhook_url,
        secret=True,
    )
    # machine
    bind_host: str = setting(
        "CLICKSTREAM_BIND_HOST",
        "127.0.0.1",
        "Address every local service listens on.",
    )
    # benchmarks
    bench_data_dir: Path = setting(
        "BENCH_DATA_DIR",
        "../shared/data/globo",
        "Data folder `make bench` publishes (click files, also in `clicks/`, and the catalogue).",
        parser=_path,
    )

    @property
    def table_locations(self) -> tuple[Location, Location, Location]:
        """The lake, the checkpoints and the warehouse."""
        return (self.parquet_destination_path, self.check_point_location, self.hive_warehouse_dir)

    @property
    def uses_s3(self) -> bool:
        """Whether a table location is on S3 (`s3a://`)."""
        return any(location.scheme == "s3a" for location in self.table_locations)

    @property
    def s3_access(self) -> S3Access:
        """How to reach the S3 store: its endpoint, region and keys (looked up when first used)."""
        return S3Access(self.s3_endpoint_url, self.s3_region, lambda: s3_credentials(self))

    @property
    def s3_endpoint_url(self) -> str:
        """The S3 store's URL: `S3_ENDPOINT`, or the local SeaweedFS's."""
        host = "127.0.0.1" if self.bind_host == "0.0.0.0" else self.bind_host  # noqa: S104
        return self.s3_endpoint or f"http://{host}:{self.s3_port}"

    @property
    def kafka_port(self) -> int:
        """Port of the local broker: the port of the first bootstrap server."""
        return int(self.kafka_servers.split(",")[0].rsplit(":", 1)[1])

    @property
    def hive_metastore_uri(self) -> str:
        host = self.hive_metastore_host or ("127.0.0.1" if self.bind_host == "0.0.0.0" else self.bind_host)  # noqa: S104
        return f"thrift://{host}:{self.hive_metastore_port}"

    @property
    def jars_dir(self) -> Path:
        return self.state_dir / "jars"

    @property
    def spark_history_url(self) -> str:
        """The Spark History Server's UI: every finished and running Spark application."""
        return f"http://{self.bind_host}:{self.spark_history_port}"

    @property
    def spark_thrift_jdbc_url(self) -> str:
        """Where `make sql` and JDBC clients reach the Hive tables through Spark's Thrift server."""
        return f"jdbc:hive2://{self.bind_host}:{self.spark_thrift_port}/{self.hive_database}"

    @property
    def airflow_url(self) -> str:
        """Airflow's UI and REST API."""
        return f"http://{self.bind_host}:{self.airflow_api_port}"

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    def environment(self) -> dict[str, str]:
        """The settings as environment variables, for child processes (secrets left out)."""
        return {spec.variable: str(getattr(self, spec.field)) for spec in SPECS if not spec.secret}

    def public_items(self) -> list[tuple[str, str]]:
        """(variable, value) pairs with secrets masked, for printing."""
        items = []
        for spec in SPECS:
            value = getattr(self, spec.field)
            shown = ("***" if value else "(generated)") if spec.secret else str(value)
            items.append((spec.variable, shown))
        return items


SPECS: tuple[SettingSpec, ...] = tuple(SettingSpec(f.name, *f.metadata[SETTING]) for f in fields(Settings))


def setting_variable(field: str) -> str:
    """The environment variable that sets the `Settings` field `field`."""
    return next(spec.variable for spec in SPECS if spec.field == field)


def read_env_file(path: Path) -> dict[str, str]:
    """Parse a `.env` file: `KEY=value` lines, `#` comments, optional quotes, `export` allowed."""
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("export "):
            stripped = stripped[len("export ") :].lstrip()
        key, sep, value = stripped.partition("=")
        if not sep or not key.strip().isidentifier():
            raise SettingsError(f"{path}:{number}: expected KEY=value, got {line!r}")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        values[key.strip()] = value
    return values


def local_env_file(env_file: Path) -> Path:
    """The git-ignored file beside `env_file` whose values win over it: `.env.local`."""
    return env_file.with_name(env_file.name + ".local")


def read_env_files(env_file: Path) -> dict[str, str]:
    """The values of `env_file` (tracked by git: no secrets) overlaid by those of its `.local` twin.
    A secret set in the tracked file is refused, naming the file and the place it belongs."""
    tracked = read_env_file(env_file)
    secrets = [name for spec in SPECS if spec.secret for name in (spec.variable, *spec.aliases) if tracked.get(name)]
    if secrets:
        raise SettingsError(
            f"{env_file} sets {', '.join(secrets)}: it is tracked by git and holds no secrets; move "
            f"{'it' if len(secrets) == 1 else 'them'} to {local_env_file(env_file)} (git-ignored) or the environment"
        )
    return {**tracked, **read_env_file(local_env_file(env_file))}


def load_settings(environ: Mapping[str, str] | None = None, env_file: Path | None = REPO_ROOT / ".env") -> Settings:
    """Resolve every setting from `environ` (default: the process environment) over `env_file` and
    its `.local` twin."""
    environment = dict(os.environ if environ is None else environ)
    file_values = read_env_files(env_file) if env_file is not None else {}
    values: dict[str, Any] = {}
    deferred: list[SettingSpec] = []
    for spec in SPECS:
        variable, raw = spec.variable, None
        # the process environment wins over the file; within each, the current name over old ones
        for source in (environment, file_values):
            for name in (spec.variable, *spec.aliases):
                if source.get(name, "") != "":  # an empty value counts as unset
                    variable, raw = name, source[name]
                    break
            if raw is not None:
                break
        if raw is None:
            if "{store}" in spec.default:
                deferred.append(spec)  # the store's address needs settings further down
                continue
            # defaults of the data folders live under the state folder, wherever that is
            raw = spec.default.replace("{state}", str(values.get("state_dir", "")))
        values[spec.field] = spec.parser(variable, raw)
    store = str(values["state_dir"])
    if values["clickstream_storage"] == "hdfs":
        host = "127.0.0.1" if values["bind_host"] == "0.0.0.0" else values["bind_host"]  # noqa: S104
        store = f"hdfs://{host}:{values['hdfs_namenode_port']}/clickstream"
    elif values["clickstream_storage"] == "s3":
        store = f"s3a://{S3_BUCKET}"
    for spec in deferred:
        values[spec.field] = spec.parser(spec.variable, spec.default.replace("{store}", store))
    return Settings(**values)


def with_own_names(settings: Settings, folder: Path | Location, label: str) -> Settings:
    """`settings` with Kafka topics, a transactional id, a Hive database, a lake and a checkpoint
    nobody used yet (`label` and a random tag in each name; the folders under `folder`), for a run
    that shares the services with others: a benchmark run, a test."""
    tag = uuid.uuid4().hex[:8]
    root = folder if isinstance(folder, Location) else Location.local(folder)
    return replace(
        settings,
        kafka_topic=f"{label}-clicks-{tag}",
        kafka_metadata_topic=f"{label}-articles-{tag}",
        kafka_ledger_topic=f"{label}-ledger-{tag}",
        kafka_rejects_topic=f"{label}-rejects-{tag}",
        producer_transactional_id=f"{label}-producer-{tag}",
        hive_database=f"{label}_{tag}",
        parquet_destination_path=root / tag / "lake",
        check_point_location=root / tag / "checkpoints",
    )


def markdown_table() -> str:
    """The README's table of settings, generated from `SPECS`."""
    lines = ["| variable | default | meaning |", "|---|---|---|"]
    for spec in SPECS:
        aliases = f" Old name: `{'`, `'.join(spec.aliases)}`." if spec.aliases else ""
        shown = spec.default.replace("{state}", "<state>").replace("{store}", "<store>")
        default = f"`{shown}`" if spec.default else "(empty)"
        lines.append(f"| `{spec.variable}` | {default} | {spec.help}{aliases} |")
    return "\n".join(lines)


README_START, README_END = "<!-- settings:start -->", "<!-- settings:end -->"


def update_readme(readme: Path = REPO_ROOT / "README.md") -> None:
    """Rewrite the settings table between the README's settings markers."""
    text = readme.read_text(encoding="utf-8")
    head, _, rest = text.partition(README_START)
    _, _, tail = rest.partition(README_END)
    readme.write_text(f"{head}{README_START}\n{markdown_table()}\n{README_END}{tail}", encoding="utf-8")


if __name__ == "__main__":
    if sys.argv[1:] == ["--markdown"]:
        print(markdown_table())
    elif sys.argv[1:] == ["--update-readme"]:
        update_readme()
    else:
        for name, shown in load_settings().public_items():
            print(f"{name}={shown}")
