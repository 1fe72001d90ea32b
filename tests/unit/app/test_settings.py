"""Settings: precedence, old names, defaults under the state folder, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.settings import REPO_ROOT, SPECS, SettingsError, load_settings, markdown_table, read_env_file, with_own_names
from app.storage import Location, _web_ports
from tests.conftest import isolated_settings


def test_defaults_without_environment_or_file() -> None:
    settings = load_settings(environ={}, env_file=None)
    assert settings.kafka_servers == "127.0.0.1:9092"
    assert settings.kafka_port == 9092
    assert settings.kafka_topic == "click_stream"
    assert settings.spark_master == "local[*]"
    assert settings.producer_data_root_directory == REPO_ROOT / "app" / "data"
    assert settings.parquet_destination_path == Location.local(REPO_ROOT / ".state" / "lake")
    assert settings.bind_host == "127.0.0.1"


def test_environment_wins_over_env_file(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("KAFKA_TOPIC=from_file\nKAFKA_METADATA_TOPIC=meta_from_file\n")
    settings = load_settings(environ={"KAFKA_TOPIC": "from_env"}, env_file=env_file)
    assert settings.kafka_topic == "from_env"
    assert settings.kafka_metadata_topic == "meta_from_file"


def test_empty_value_counts_as_unset() -> None:
    assert load_settings(environ={"KAFKA_TOPIC": ""}, env_file=None).kafka_topic == "click_stream"


def test_old_spark_server_host_means_a_standalone_master() -> None:
    assert load_settings(environ={"SPARK_SERVER_HOST": "spark"}, env_file=None).spark_master == "spark://spark:7077"
    both = load_settings(environ={"SPARK_SERVER_HOST": "spark", "SPARK_MASTER_URL": "local[2]"}, env_file=None)
    assert both.spark_master == "local[2]"


def test_data_folders_follow_the_state_folder(tmp_path: Path) -> None:
    settings = load_settings(environ={"CLICKSTREAM_STATE_DIR": str(tmp_path)}, env_file=None)
    assert settings.parquet_destination_path == Location.local(tmp_path / "lake")
    assert settings.check_point_location == Location.local(tmp_path / "checkpoints")
    assert settings.hive_warehouse_dir == Location.local(tmp_path / "warehouse")


def test_relative_paths_start_at_the_repository() -> None:
    settings = load_settings(environ={"PARQUET_DESTINATION_PATH": "out/lake"}, env_file=None)
    assert settings.parquet_destination_path == Location.local(REPO_ROOT / "out" / "lake")
    assert str(settings.parquet_destination_path) == str(REPO_ROOT / "out" / "lake")  # as child processes get it


def test_a_file_uri_is_a_local_folder() -> None:
    settings = load_settings(environ={"HIVE_WAREHOUSE_DIR": "file:///srv/warehouse"}, env_file=None)
    assert settings.hive_warehouse_dir.local_path == Path("/srv/warehouse")
    assert settings.hive_warehouse_dir.uri == "file:///srv/warehouse"


def test_table_locations_may_be_on_hdfs_and_readers_learn_its_web_port() -> None:
    environ = {
        "PARQUET_DESTINATION_PATH": "hdfs://namenode.example:8020/clickstream/lake/",
        "CHECK_POINT_LOCATION": "hdfs://namenode.example:8020/clickstream/checkpoints",
        "HDFS_NAMENODE_HTTP_PORT": "50070",
    }
    settings = load_settings(environ=environ, env_file=None)
    lake = settings.parquet_destination_path
    assert (lake.scheme, lake.authority, lake.path) == ("hdfs", "namenode.example:8020", "/clickstream/lake")
    assert (
        str(lake / "raw_clicks" / "dt=2017-10-01")
        == "hdfs://namenode.example:8020/clickstream/lake/raw_clicks/dt=2017-10-01"
    )
    assert load_settings(environ=settings.environment(), env_file=None) == settings  # child processes read it back
    assert _web_ports["namenode.example:8020"] == 50070


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("HIVE_METASTORE_PORT", "ninety", "HIVE_METASTORE_PORT: expected a port number, got 'ninety'"),
        ("AIRFLOW_API_PORT", "70000", "AIRFLOW_API_PORT: port must be between 1 and 65535, got 70000"),
        ("KAFKA_SERVERS", "localhost", "KAFKA_SERVERS: expected host:port[,host:port], got 'localhost'"),
        ("SPARK_MASTER_URL", "mesos://x", "SPARK_MASTER_URL: expected local[*], spark://host:port"),
        ("PRODUCER_ITEM_WAIT_TIME", "-1", "PRODUCER_ITEM_WAIT_TIME: must not be negative"),
        ("AIRFLOW_PARALLELISM", "0", "AIRFLOW_PARALLELISM: must be at least 1"),
        ("HIVE_WAREHOUSE_DIR", "hdfs:///warehouse", "HIVE_WAREHOUSE_DIR: 'hdfs:///warehouse' names no NameNode"),
        ("PARQUET_DESTINATION_PATH", "gs://lake/raw", "PARQUET_DESTINATION_PATH: .gs://lake/raw. is a gs://"),
        (
            "CLICKSTREAM_STATE_DIR",
            "hdfs://nn:8020/state",
            "CLICKSTREAM_STATE_DIR: 'hdfs://nn:8020/state' must be on this",
        ),
        ("CHECK_POINT_LOCATION", "file://checkpoints", "CHECK_POINT_LOCATION: a file:// URI names an absolute path"),
        ("QUIET_GAP_MAX_HOURS", "-1", "QUIET_GAP_MAX_HOURS: must not be negative"),
        ("AIRFLOW_CATCH_UP_SCHEDULE", "often", "AIRFLOW_CATCH_UP_SCHEDULE: expected a cron expression"),
    ],
)
def test_bad_values_name_the_variable(variable: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError, match="^" + message.replace("[", r"\[").replace("*", r"\*")):
        load_settings(environ={variable: value}, env_file=None)


def test_env_file_syntax(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("# comment\n\nexport A=1\nB='two words'\nC=three # trailing comment\nD=\"x=y\"\nE=\n")
    assert read_env_file(env_file) == {"A": "1", "B": "two words", "C": "three", "D": "x=y", "E": ""}


def test_env_file_bad_line_names_file_and_line(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("A=1\nthis is not a setting\n")
    with pytest.raises(SettingsError, match=rf"{env_file}:2: expected KEY=value"):
        read_env_file(env_file)


def test_repository_env_file_is_valid_and_keeps_the_original_names() -> None:
    values = read_env_file(REPO_ROOT / ".env")
    for name in (
        "KAFKA_TOPIC",
        "KAFKA_METADATA_TOPIC",
        "KAFKA_SERVERS",
        "PRODUCER_CLICK_CSV_DATA_PREFIX",
        "PRODUCER_CLICK_METADATA_CSV_DATA_PREFIX",
        "PRODUCER_DATA_ROOT_DIRECTORY",
        "CSV_SUFFIX",
        "PRODUCER_ITEM_WAIT_TIME",
    ):
        assert name in values
    known = {spec.variable for spec in SPECS} | {alias for spec in SPECS for alias in spec.aliases}
    assert set(values) <= known, f"unknown variables in .env: {set(values) - known}"
    load_settings(environ={}, env_file=REPO_ROOT / ".env")


def test_readme_documents_every_setting() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    assert markdown_table() in readme, "README's settings table is out of date: python -m app.settings --markdown"


def test_printing_masks_the_password() -> None:
    settings = load_settings(environ={"AIRFLOW_ADMIN_PASSWORD": "s3cret"}, env_file=None)
    shown = dict(settings.public_items())
    assert shown["AIRFLOW_ADMIN_PASSWORD"] == "***"
    assert "s3cret" not in repr(shown)


def test_only_a_local_master_writes_through_the_forkless_local_file_system(tmp_path: Path) -> None:
    """A cluster's executors run elsewhere, without the class, and list a shared file system's
    folders in parallel: only a local master gets the class and lists folders on its driver."""
    from app.runtime import deps
    from app.spark_session import local_file_system_conf

    local = local_file_system_conf(isolated_settings(tmp_path, {"SPARK_MASTER_URL": "local[2]"}))
    assert local == {
        "spark.sql.sources.parallelPartitionDiscovery.threshold": "100000",
        "spark.driver.extraClassPath": str(deps.SPARK_LOCAL_FS_JAR),
        "spark.hadoop.fs.file.impl": deps.SPARK_LOCAL_FS_CLASS,
    }
    assert local_file_system_conf(isolated_settings(tmp_path, {"SPARK_MASTER_URL": "spark://127.0.0.1:7077"})) == {}


def test_runs_with_own_names_share_no_topic_database_or_folder(tmp_path: Path) -> None:
    settings = isolated_settings(tmp_path / "state")
    first, second = (with_own_names(settings, tmp_path / "runs", "bench") for _ in range(2))
    names = ("kafka_topic", "kafka_metadata_topic", "kafka_ledger_topic", "kafka_rejects_topic")
    owned = (*names, "producer_transactional_id", "hive_database", "parquet_destination_path", "check_point_location")
    for name in owned:
        assert getattr(first, name) != getattr(second, name) != getattr(settings, name)
    assert first.kafka_topic.startswith("bench-clicks-") and first.hive_database.isidentifier()
    assert first.parquet_destination_path.is_relative_to(Location.local(tmp_path / "runs"))
    assert first.check_point_location.is_relative_to(Location.local(tmp_path / "runs"))
    assert first.kafka_servers == settings.kafka_servers  # the services stay shared


def test_a_local_driver_maps_the_class_archive_and_takes_the_extra_java_options_last(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The archive fits a local master's class path only; SPARK_DRIVER_JAVA_OPTIONS comes after the
    project's own options, so that it can override them."""
    from app.runtime import deps
    from app.spark_session import spark_conf

    archive = tmp_path / "spark-driver.jsa"
    archive.write_bytes(b"")
    monkeypatch.setattr(deps, "SPARK_CLASS_ARCHIVE", archive)
    extra = {"SPARK_DRIVER_JAVA_OPTIONS": "-XX:TieredStopAtLevel=1"}
    local = spark_conf(isolated_settings(tmp_path, {"SPARK_MASTER_URL": "local[2]", **extra}))
    options = local["spark.driver.extraJavaOptions"].split()
    assert options[-2:] == [f"-XX:SharedArchiveFile={archive}", "-XX:TieredStopAtLevel=1"]
    assert "SharedArchiveFile" not in local["spark.executor.extraJavaOptions"]
    cluster = spark_conf(isolated_settings(tmp_path, {"SPARK_MASTER_URL": "spark://127.0.0.1:7077"}))
    assert "SharedArchiveFile" not in cluster["spark.driver.extraJavaOptions"]
    archive.unlink()  # before setup made it
    assert "SharedArchiveFile" not in spark_conf(isolated_settings(tmp_path))["spark.driver.extraJavaOptions"]


def test_tables_on_s3_get_s3a_settings_and_keys_only_through_the_environment(tmp_path: Path) -> None:
    from app.spark_session import s3a_conf, spark_environment

    assert s3a_conf(isolated_settings(tmp_path)) == {}
    local = isolated_settings(tmp_path, {"CLICKSTREAM_STORAGE": "s3", "S3_PORT": "18333"})
    assert local.parquet_destination_path.uri == "s3a://clickstream/lake" and local.uses_s3
    conf = s3a_conf(local)
    assert conf["spark.hadoop.fs.s3a.endpoint"] == "http://127.0.0.1:18333"
    assert conf["spark.hadoop.fs.s3a.path.style.access"] == "true"
    assert conf["spark.hadoop.fs.s3a.connection.ssl.enabled"] == "false"
    assert not any("key" in name for name in conf)  # never on a command line
    environment = spark_environment(local)
    generated = json.loads((tmp_path / "seaweedfs" / "credentials.json").read_text())
    assert environment["AWS_ACCESS_KEY_ID"] == generated["access_key"]
    assert environment["AWS_SECRET_ACCESS_KEY"] == generated["secret_key"]
    assert (tmp_path / "seaweedfs" / "credentials.json").stat().st_mode & 0o077 == 0
    aws = isolated_settings(
        tmp_path,
        {
            "PARQUET_DESTINATION_PATH": "s3a://lake-bucket/lake",
            "S3_ENDPOINT": "https://s3.eu-west-1.amazonaws.com/",
            "S3_REGION": "eu-west-1",
            "S3_ACCESS_KEY": "AKIAEXAMPLE",
            "S3_SECRET_KEY": "not-a-real-secret",
        },
    )
    assert s3a_conf(aws)["spark.hadoop.fs.s3a.connection.ssl.enabled"] == "true"
    assert s3a_conf(aws)["spark.hadoop.fs.s3a.endpoint"] == "https://s3.eu-west-1.amazonaws.com"
    assert spark_environment(aws)["AWS_ACCESS_KEY_ID"] == "AKIAEXAMPLE"
    assert "not-a-real-secret" not in json.dumps(aws.environment())  # a secret: not passed on as a setting
    with pytest.raises(SettingsError, match="S3_ENDPOINT"):
        isolated_settings(tmp_path, {"S3_ENDPOINT": "s3.amazonaws.com"})


def test_hdfs_clients_close_files_without_long_waits_and_keep_one_replica_on_the_local_hdfs(tmp_path: Path) -> None:
    from app.spark_session import hdfs_client_conf

    retry = "spark.hadoop.dfs.client.block.write.locateFollowingBlock.initial.delay.ms"
    local = hdfs_client_conf(isolated_settings(tmp_path, {"CLICKSTREAM_STORAGE": "hdfs"}))
    assert local[retry] == "10" and local["spark.hadoop.dfs.replication"] == "1"  # one DataNode
    cluster = hdfs_client_conf(isolated_settings(tmp_path, {"PARQUET_DESTINATION_PATH": "hdfs://nn.example:8020/lake"}))
    assert cluster[retry] == "10" and "spark.hadoop.dfs.replication" not in cluster  # the cluster's own default
