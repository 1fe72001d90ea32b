"""What only Airflow needs: the DAG tasks' work (`tasks`), the Spark operators, the tasks' defaults and
parameters (`operators`), the trigger a drain defers on (`triggers`), the assets (`assets`), the
failure notifier (`alerts`), the pools (`pools`) and the REST API client of the demo and the tests
(`client`). The DAG files in `dags/` stay thin and import from here; the pipeline's core (`app/`,
`spark_jobs/`) never imports this package.

Importing the package itself imports nothing (the DAG processor parses the DAG files often).
"""
