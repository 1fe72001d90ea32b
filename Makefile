# clickstream: the plain entry points. `make help` lists them.
# Every target that needs the Python environment or the jars runs `setup` first; setup skips
# whatever is already installed and unchanged, so repeating a target is fast.

SHELL := /bin/bash
PY := .venv/bin/python
PYTEST_ARGS ?=
TEST_WORKERS ?= 2  # make test's pytest-xdist workers, a test file each at a time, each with services of its own

.PHONY: help setup up down status test test-unit lint lock demo publish sql bench bench-scale airflow forget

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s $$'\t'

setup:  ## install what is missing: Java/Maven (apt), .venv (PyPI), jars (Maven Central)
	@bash scripts/bootstrap.sh

demo: setup  ## the main job: start the services and run the pipeline on app/data/ (PRODUCER_DATA_ROOT_DIRECTORY)
	@$(PY) -m app.tools.demo

publish: setup  ## publish what is new in the data folder (make publish ARGS="--dry-run")
	@$(PY) -m app.producer publish $(ARGS)

bench: setup  ## benchmarks against ceilings measured in the same run; writes docs/benchmarks.md (BENCH_DATA_DIR)
	@$(PY) -m app.tools.bench $(ARGS)

bench-scale: setup  ## the scale series (1x, 3x, 10x the data set); writes docs/benchmarks-scale.md (BENCH_DATA_DIR)
	@$(PY) -m app.tools.bench.scale $(ARGS)

sql: setup  ## SQL shell on the Hive tables (beeline on the Spark Thrift server); make sql ARGS='-e "SHOW TABLES"'
	@$(PY) -m app.tools.sql_shell $(ARGS)

forget: export CLICKSTREAM_FORGET_USERS = $(USER)
forget: setup  ## forget users everywhere the tables keep their clicks: make forget USER=123 (or USER=123,456)
	@$(PY) -m app.tools.forget "$$CLICKSTREAM_FORGET_USERS"

up: setup  ## start Kafka, the Hive Metastore and Airflow on 127.0.0.1 (twice is harmless)
	@$(PY) -m app.runtime up

airflow: setup  ## the Airflow CLI with the environment make up gives Airflow: make airflow ARGS="dags list"
	@$(PY) -m app.runtime airflow $(ARGS)

down:  ## stop every service this checkout started
	@if [ -x $(PY) ]; then $(PY) -m app.runtime down; else echo "nothing to stop: no .venv"; fi

status:  ## each service: running or not, pid, port, health
	@if [ -x $(PY) ]; then $(PY) -m app.runtime status; else echo "not set up yet: run make setup"; exit 3; fi

LINT = .venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/mypy

test:  ## lint, then the whole test suite (installs Chromium and docker-compose for it); starts and stops its services
	@bash scripts/bootstrap.sh --test-tools
	@$(LINT)
	@$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS)

test-unit:  ## only the unit tests (no services)
	@bash scripts/bootstrap.sh --test-tools
	@$(PY) -m pytest -m "not integration" $(PYTEST_ARGS)

lint: setup  ## ruff and mypy
	@$(LINT)

lock: setup  ## re-resolve requirements/*.in into requirements/requirements.lock
	@.venv/bin/uv pip compile -q --python-version 3.11 requirements/requirements.in requirements/dev.in \
	  --override requirements/overrides.txt -o requirements/requirements.lock
