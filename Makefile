# Every target creates the virtual environment first when it is missing or stale, installing
# exactly the versions uv.lock records (the Dockerfile installs the same lock).
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The Dockerfile pins the same uv (tests/unit/test_deploy_files.py checks they agree).
UV_VERSION := 0.13.8
UV := $(VENV)/bin/uv
UV_STAMP := $(VENV)/.uv-$(UV_VERSION)
# uv installs into $(VENV) with the interpreter that created it, never one it downloads.
export UV_PROJECT_ENVIRONMENT := $(VENV)
export UV_PYTHON_DOWNLOADS := never

.PHONY: run test lint unit demo bench lock lock-check test-lowest clean

$(UV_STAMP):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet uv==$(UV_VERSION)
	touch $(UV_STAMP)

# --locked refuses a uv.lock that no longer matches pyproject.toml; --inexact keeps uv itself.
# --compile-bytecode: where PYTHONDONTWRITEBYTECODE is set, an environment without bytecode
# compiles every module again at each start (two seconds of CPU for the service's imports).
$(STAMP): pyproject.toml uv.lock $(UV_STAMP)
	$(UV) sync --quiet --locked --inexact --extra dev --compile-bytecode
	touch $(STAMP)

## After changing pyproject.toml's dependencies: record the new resolution in uv.lock.
lock: $(UV_STAMP)
	$(UV) lock

## Fails when uv.lock does not match pyproject.toml (what .ci/run checks first).
lock-check: $(UV_STAMP)
	@$(UV) lock --check || { \
	  echo "uv.lock does not match pyproject.toml: run 'make lock' and commit uv.lock" >&2; \
	  exit 1; }

## Run the service with embedded defaults (bundled Kafka-compatible broker, in-memory state).
run: $(STAMP)
	$(VENV)/bin/bcs-dev

# pytest-xdist workers. Tests that share Redis, PostgreSQL or the repository keep to keys,
# schemas, ports and brokers of their own, so they run side by side. `make test` spends most
# of its time waiting on the processes, brokers and servers it starts: two workers a core.
# `make unit` is all computation: one a core. PYTEST_WORKERS=0 (UNIT_WORKERS=0 for `make
# unit`) runs the tests in one process, e.g. for pdb.
PYTEST_WORKERS ?= $(shell echo $$(( $$(nproc) * 2 )))
UNIT_WORKERS ?= auto
# worksteal: an idle worker takes queued tests from a busy one, as the slow e2e tests bunch.
XDIST := --dist worksteal -n

## Lint, type-check and run every test (unit, contract, integration, e2e).
test: lint
	$(PY) -m pytest $(XDIST) $(PYTEST_WORKERS)

lint: $(STAMP)
	$(PY) -m ruff check services libs tests bench
	$(PY) -m mypy services libs

## The fast loop: no broker, server, service process or external tool.
unit: $(STAMP)
	$(PY) -m pytest $(XDIST) $(UNIT_WORKERS) tests/unit

## The unit, contract and integration tests against the lowest versions pyproject.toml allows
## (not the lock): the declared floors must be true. CI runs it after `make test`.
LOWEST ?= .venv-lowest
test-lowest: $(UV_STAMP)
	$(PYTHON) -m venv --clear $(LOWEST)
	VIRTUAL_ENV=$(LOWEST) $(UV) pip install --quiet --compile-bytecode --resolution lowest-direct -e '.[dev]'
	$(LOWEST)/bin/python -m pytest $(XDIST) $(PYTEST_WORKERS) tests/unit tests/contract tests/integration

## Publish a sample batch's events to the running dev service and show /define before and after.
demo: $(STAMP)
	$(VENV)/bin/bcs-demo

bench: $(STAMP)
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) $(LOWEST) .mypy_cache .ruff_cache .pytest_cache
