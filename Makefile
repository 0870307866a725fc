# Every target creates the virtual environment first when it is missing or stale.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint unit demo bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## Run the service with embedded defaults (bundled Kafka-compatible broker, in-memory state).
run: $(STAMP)
	$(VENV)/bin/bcs-dev

## Lint, type-check and run every test (unit, integration, e2e).
test: lint
	$(PY) -m pytest

lint: $(STAMP)
	$(PY) -m ruff check services libs tests bench
	$(PY) -m mypy services libs

unit: $(STAMP)
	$(PY) -m pytest tests/unit

## Publish a sample batch's events to the running dev service and show /define before and after.
demo: $(STAMP)
	$(VENV)/bin/bcs-demo

bench: $(STAMP)
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
