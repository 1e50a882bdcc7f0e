# Runway: every target sets itself up on a fresh machine (Python 3.11+, Java 17).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

export PYSPARK_PYTHON := $(CURDIR)/$(PY)
export MLFLOW_DISABLE_TELEMETRY := true
export SPARK_LOCAL_IP ?= 127.0.0.1

.PHONY: install test demo up down bench wheel lint format clean

install: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@scripts/check_prereqs.sh $(PYTHON)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

## The whole test suite (what CI runs).
test: install
	$(PY) -m pytest

## The main job: the lifecycle demo on the embedded default (local engine, dev environment).
demo: install
	$(PY) scripts/demo.py

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
