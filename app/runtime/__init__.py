"""The local runtime: Kafka, the Hive Metastore and Airflow as background processes on loopback."""
