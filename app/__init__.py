"""clickstream: publish news-portal click CSV files to Kafka, stream them through Spark into Hive."""
