# Runway: every target sets itself up on a fresh machine (Python 3.11+, Java 17).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

export PYSPARK_PYTHON := $(CURDIR)/$(PY)
export MLFLOW_DISABLE_TELEMETRY := true
export SPARK_LOCAL_IP ?= 127.0.0.1

# The use case every target runs on: a folder under include/use_cases/ (default: flight_delay).
ifdef USE_CASE
export RUNWAY_USE_CASE := $(USE_CASE)
endif

.PHONY: install delta-jars test test-unit test-use-case demo up down bench wheel lint format clean use-case use-case-check

install: $(STAMP) delta-jars

$(STAMP): requirements.txt pyproject.toml
	@scripts/check_prereqs.sh $(PYTHON)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

# delta-spark's JVM jars for the spark table engine, with Maven where `mvn` is installed (else the
# manifest says why, the spark engine's tests skip with that reason, and the next install tries
# again); quiet and quick when .jars/delta/manifest.json is current.
delta-jars: $(STAMP)
	@$(PY) scripts/fetch_delta_jars.py

## The whole test suite (what CI runs), after the linter and the formatter's check: on
## TEST_WORKERS processes (pytest-xdist), each taking whole modules (tests/conftest.py).
TEST_WORKERS ?= 2
test: lint
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadscope --no-loadscope-reorder

## The fast tier: pure functions and policies (tests/unit), no Spark and no servers.
test-unit: install
	$(PY) -m pytest tests/unit

## Only the selected use case's tests (USE_CASE=<name>): its lifecycle end to end, no other.
test-use-case: install
	@test -n "$(USE_CASE)" || { echo "usage: make test-use-case USE_CASE=<name>"; exit 2; }
	RUNWAY_TEST_ONLY_SELECTED=1 $(PY) -m pytest tests/use_case

## The main job: the lifecycle demo on the embedded default (local engine, dev environment).
demo: install
	$(PY) scripts/demo.py

## A new use case folder from the template (include/use_cases/$(NAME)): make use-case NAME=churn
use-case: install
	@test -n "$(NAME)" || { echo "usage: make use-case NAME=<name>"; exit 2; }
	$(PY) -m jobs.use_case new $(NAME)

## Check the selected use case (USE_CASE=...): columns, feature SQL, suites, before any data flows.
use-case-check: install
	$(PY) -m jobs.use_case check

## The embedded stack for the UIs: Airflow standalone on :8080, the MLflow UI on :5000.
up: install
	$(PY) scripts/stack.py up

## Stop exactly what `make up` started.
down:
	@if [ -x $(PY) ]; then $(PY) scripts/stack.py down; else echo "nothing to stop"; fi

## The project's wheel (jobs, the runway_job entry point, configs, SQL, suites) for clusters.
wheel: install
	rm -rf dist build
	$(PY) -m pip wheel --quiet --no-deps -w dist .
	@ls dist/*.whl

## Performance figures as JSON.
bench: install
	$(PY) scripts/bench.py

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf data .pytest_cache
