"""The Hive Metastore through its public thrift API: locations of tables and partitions, and
partition changes in batches.

The Spark jobs change partitions here rather than through Spark SQL because the thrift API takes
many partitions in one call (`add_partitions_req`, `alter_partitions`): a statement per partition
cost a tenth of a second each, a third of a micro-batch touching 200 hours. The pipeline view and
`check_tables` read locations here, so nothing of theirs starts Spark. Spark caches a table's file
listing: a job that changed partitions here refreshes the table (`REFRESH TABLE`) before reading it.

Partition names are Hive's: `dt=2017-10-01/hour=3` (values in the order of the partition keys).
A connection is opened per call: a restarted metastore is simply reached again by the next call.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

log = logging.getLogger(__name__)


class MetastoreUnreachable(ConnectionError):
    """The metastore did not accept the connection or did not answer in time."""


def partition_values(name: str) -> dict[str, str]:
    """`dt=2017-10-01/hour=3` -> {"dt": "2017-10-01", "hour": "3"}."""
    return dict(part.split("=", 1) for part in name.split("/") if part)


def partition_hour(name: str) -> tuple[str, int]:
    """The (dt, hour) of an hourly partition's name, `dt=2017-10-01/hour=3` -> ("2017-10-01", 3);
    ("", 0) for a partition without them (so any table's partitions sort by it)."""
    values = partition_values(name)
    return values.get("dt", ""), int(values.get("hour", 0))


def hour_partition(hour: tuple[str, int]) -> str:
    """The name of an hourly partition: ("2017-10-01", 3) -> `dt=2017-10-01/hour=3`."""
    return f"dt={hour[0]}/hour={hour[1]}"


def partition_name(keys: list[str], values: list[str]) -> str:
    return "/".join(f"{key}={value}" for key, value in zip(keys, values, strict=True))


def location_uri(path: str) -> str:
    """A local folder as a metastore location. Not `Path.as_uri()`: it escapes the `=` of `dt=...`, and
    the metastore would then point at a folder that does not exist."""
    return path if "://" in path else f"file://{path}"


def local_path(location: str) -> str:
    """A metastore location (`file:/...` or `file:///...`) as a local path."""
    for prefix in ("file://", "file:"):
        if location.startswith(prefix):
            return location[len(prefix) :]
    return location


class Metastore:
    """A thin client of one metastore (`thrift://host:port`) and one database."""

    def __init__(self, uri: str, database: str, timeout_seconds: float = 60.0) -> None:
        self.host, port = uri.removeprefix("thrift://").rsplit(":", 1)
        self.port = int(port)
        self.database = database
        self.timeout_seconds = timeout_seconds

    @contextmanager
    def client(self) -> Iterator[Any]:
        from thrift.protocol import TBinaryProtocol
        from thrift.transport import TSocket, TTransport
        from thrift_files.libraries.thrift_hive_metastore_client.ThriftHiveMetastore import Client

        raw_socket = TSocket.TSocket(self.host, self.port)
        raw_socket.setTimeout(self.timeout_seconds * 1000)
        transport = TTransport.TBufferedTransport(raw_socket)
        try:
            transport.open()
        except TTransport.TTransportException as error:
            raise MetastoreUnreachable(
                f"the Hive Metastore at thrift://{self.host}:{self.port} does not accept connections ({error})"
            ) from None
        try:
            yield Client(TBinaryProtocol.TBinaryProtocol(transport))
        except (TimeoutError, TTransport.TTransportException) as error:
            raise MetastoreUnreachable(
                f"the Hive Metastore at thrift://{self.host}:{self.port} did not answer ({error})"
            ) from None
        finally:
            transport.close()

    def tables(self) -> set[str]:
        with self.client() as client:
            if self.database not in client.get_all_databases():
                return set()
            return set(client.get_all_tables(self.database))

    def table(self, name: str) -> Any:
        with self.client() as client:
            return client.get_table(self.database, name)

    def partition_keys(self, name: str) -> list[str]:
        return [key.name for key in self.table(name).partitionKeys or []]

    def table_location(self, name: str) -> str:
        return local_path(self.table(name).sd.location)

    def partition_locations(self, name: str, names: list[str] | None = None) -> dict[str, str]:
        """Partition name -> local folder, of every partition of the table, or of those `names` that exist."""
        if names is not None and not names:
            return {}
        with self.client() as client:
            keys = [key.name for key in client.get_table(self.database, name).partitionKeys or []]
            if names is None:
                partitions = client.get_partitions(self.database, name, -1)
            else:
                partitions = client.get_partitions_by_names(self.database, name, sorted(set(names)))
        return {partition_name(keys, list(p.values)): local_path(p.sd.location) for p in partitions}

    def add_partitions(self, name: str, folders: Mapping[str, str]) -> None:
        """Register new partitions (name -> folder) in one call; those that exist already are left alone."""
        if not folders:
            return
        from thrift_files.libraries.thrift_hive_metastore_client.ttypes import AddPartitionsRequest, Partition

        with self.client() as client:
            table = client.get_table(self.database, name)
            keys = [key.name for key in table.partitionKeys]
            partitions = []
            for partition, folder in folders.items():
                values = partition_values(partition)
                storage = copy.deepcopy(table.sd)
                storage.location = location_uri(folder)
                partitions.append(
                    Partition(
                        values=[values[key] for key in keys],
                        dbName=self.database,
                        tableName=name,
                        sd=storage,
                        parameters={},
                    )
                )
            request = AddPartitionsRequest(
                dbName=self.database, tblName=name, parts=partitions, ifNotExists=True, needResult=False
            )
            client.add_partitions_req(request)

    def move_partitions(self, name: str, folders: Mapping[str, str]) -> dict[str, str]:
        """Point existing partitions at new folders in one call (readers through the metastore see
        each partition's old folder or its new one, never a mix); returns their previous folders."""
        if not folders:
            return {}
        with self.client() as client:
            keys = [key.name for key in client.get_table(self.database, name).partitionKeys]
            partitions = client.get_partitions_by_names(self.database, name, sorted(folders))
            previous = {}
            for partition in partitions:
                found = partition_name(keys, list(partition.values))
                previous[found] = local_path(partition.sd.location)
                partition.sd.location = location_uri(folders[found])
            client.alter_partitions(self.database, name, partitions)
        return previous
