"""The metastore client's own logic: partition names, locations and statistics, and the protocol
that decodes the metastore's answers (the calls themselves run against a real metastore in
tests/integration)."""

from __future__ import annotations

from thrift.transport.TTransport import TMemoryBuffer
from thrift_files.libraries.thrift_hive_metastore_client.ttypes import FieldSchema, Partition, StorageDescriptor

from app.metastore import PartitionStats, local_path, location_uri, partition_name, partition_values, protocol


def test_partition_names_values_and_locations_round_trip() -> None:
    assert partition_values("dt=2017-10-01/hour=3") == {"dt": "2017-10-01", "hour": "3"}
    assert partition_name(["dt", "hour"], ["2017-10-01", "3"]) == "dt=2017-10-01/hour=3"
    assert location_uri("/lake/raw_clicks/dt=2017-10-01") == "file:///lake/raw_clicks/dt=2017-10-01"
    assert location_uri("hdfs://127.0.0.1:9000/lake") == "hdfs://127.0.0.1:9000/lake"
    assert local_path("file:/lake/x") == local_path("file:///lake/x") == "/lake/x"
    assert PartitionStats.of(PartitionStats(3, 1, 10).parameters()) == PartitionStats(3, 1, 10)
    assert PartitionStats.of({"numRows": "-1", "numFiles": "1", "totalSize": "10"}) is None


def test_answers_are_decoded_by_thrift_s_c_extension() -> None:
    """The pure-Python decoder took four times as long for the partitions of a large table (the
    thrift runtime pinned by hive-metastore-client has a C decoder that fails on this Python)."""
    columns = [FieldSchema(name=f"column_{number}", type="bigint") for number in range(12)]
    sent = Partition(
        values=["2017-10-01", "3"],
        dbName="clickstream",
        tableName="raw_clicks",
        sd=StorageDescriptor(cols=columns, location="file:///lake/raw_clicks/dt=2017-10-01/hour=3"),
        parameters=PartitionStats(3, 1, 10).parameters(),
    )
    written = TMemoryBuffer()
    sent.write(protocol(written))
    reading = protocol(TMemoryBuffer(written.getvalue()))
    assert reading._fast_decode is not None, "thrift's C extension is missing: `make setup` installs it"
    received = Partition()
    received.read(reading)
    assert received == sent
