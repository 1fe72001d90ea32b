"""HDFS's own daemons as the project starts them (`python -m app.runtime up hdfs`): healthy in the
status, a partitioned Parquet table written and read by Spark on `hdfs://`, the same files listed
and read by Python over WebHDFS, and the NameNode's web UI served."""

from __future__ import annotations

import io
import urllib.request
import uuid
from typing import TYPE_CHECKING

import fsspec
import pyarrow.parquet as pq

from app.runtime.hdfs import Hdfs
from app.runtime.service import Service
from app.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def test_spark_writes_a_partitioned_table_on_the_local_hdfs_and_python_reads_it_over_webhdfs(
    hdfs: Service, settings: Settings, spark: SparkSession
) -> None:
    service = Hdfs(settings)
    status = service.status()
    assert status.running and status.health.healthy, status
    assert len(status.pids) == 2  # a NameNode and a DataNode, each its own process

    folder = f"/lake/test-{uuid.uuid4().hex[:8]}"
    rows = [{"user_id": n, "dt": f"2017-10-0{n % 2 + 1}", "hour": n % 3} for n in range(60)]
    spark.createDataFrame(rows).write.partitionBy("dt", "hour").parquet(f"{service.url}{folder}")
    assert spark.read.parquet(f"{service.url}{folder}").count() == 60

    web = fsspec.filesystem(
        "webhdfs", host=settings.bind_host, port=settings.hdfs_namenode_http_port, user="clickstream"
    )
    partitions = sorted(
        path.rsplit("/", 2)[-2] + "/" + path.rsplit("/", 1)[-1] for path in web.glob(f"{folder}/dt=*/hour=*")
    )
    assert partitions == [f"dt=2017-10-0{day}/hour={hour}" for day in (1, 2) for hour in range(3)]
    read = 0
    for data_file in web.glob(f"{folder}/dt=*/hour=*/*.parquet"):
        read += pq.read_table(io.BytesIO(web.cat_file(data_file))).num_rows
    assert read == 60

    with urllib.request.urlopen(f"{service.web_url}/dfshealth.html", timeout=10) as page:  # noqa: S310 - loopback
        assert page.status == 200 and b"Namenode information" in page.read()
