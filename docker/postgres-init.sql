-- Run once by the postgres container on its first start: a second database, for the Hive Metastore,
-- beside the Airflow metadata database (POSTGRES_DB).
CREATE DATABASE metastore;
