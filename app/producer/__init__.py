"""The publishing side of clickstream: CSV files in a data folder to Kafka topics, each file exactly once.

`publish(settings, options)` is the library entry point (the Airflow tasks call it and get a
`PublishReport`); `python -m app.producer` is the command line.
"""
