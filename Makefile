# Rampart. Two commands matter: `make demo` and `make test`. Both build .venv from the hashed lock
# file on first use (only python3 and make are needed) and are quick no-ops afterwards.

SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LOCK := requirements/dev.lock
PYTEST_ARGS ?=

.PHONY: demo test test-quick lint bench audit-deps lock clean help serve screenshots

help:
	@echo "make demo        run the platform on the embedded default (SQLite, in-process caches)"
	@echo "make test        run the test suite on SQLite and PostgreSQL"
	@echo "make test-quick  domain logic and in-memory adapters only (no database, Redis, browser)"
	@echo "make lint        ruff, mypy and the import rules of docs/architecture.md"
	@echo "make bench       run the benchmarks in bench/ and print the figures"
	@echo "make screenshots the console's main pages at desktop and phone widths, in docs/console/"
	@echo "make audit-deps  pip-audit the locked dependencies"
	@echo "make lock        re-lock requirements/*.lock from pyproject.toml (needs network)"

$(STAMP): $(LOCK) pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "Installing the locked dependencies into $(VENV) (first run only)..."
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-input \
		--require-hashes --no-deps -r $(LOCK) 2>&1 | { grep -v '^WARNING: Location' || true; }
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-input \
		--no-deps --no-build-isolation -e . 2>&1 | { grep -v '^WARNING: Location' || true; }
	@touch $(STAMP)

demo: $(STAMP)
	@$(BIN)/rampart demo

serve: $(STAMP)
	@$(BIN)/rampart serve

test: $(STAMP)
	@$(BIN)/python -m pytest $(PYTEST_ARGS)

# The `storage` and `redis` markers are set from each test's fixtures (tests/conftest.py).
QUICK := not storage and not redis and not browser and not slow
test-quick: $(STAMP)
	@$(BIN)/python -m pytest -q -m "$(QUICK)" $(PYTEST_ARGS)

lint: $(STAMP)
	@$(BIN)/ruff check src tests bench
	@$(BIN)/ruff format --check src tests bench
	@$(BIN)/mypy
	@$(BIN)/lint-imports

bench: $(STAMP)
	@$(BIN)/python -m bench

screenshots: $(STAMP)
	@$(BIN)/python -m tests.support.screenshots

audit-deps: $(STAMP)
	@$(BIN)/pip-audit --strict --disable-pip --no-deps -r requirements/runtime.lock -r $(LOCK)

lock:
	@$(PYTHON) -m pip install --quiet uv
	@$(PYTHON) -m uv pip compile pyproject.toml --extra dev --python-version 3.11 \
		--generate-hashes -o requirements/dev.lock
	@$(PYTHON) -m uv pip compile pyproject.toml --python-version 3.11 --generate-hashes \
		-c requirements/dev.lock -o requirements/runtime.lock
	@echo "now regenerate the SBOM from the new lock: PYTHONPATH=src $(BIN)/python -m rampart.platform.sbom"

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
