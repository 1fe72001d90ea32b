"""The Spark applications of clickstream, each started with `spark-submit`."""
