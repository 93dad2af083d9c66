# Catalog: `make run` serves the API, `make test` runs the tests. `make help` lists the rest.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The PostgreSQL test run; its database is dropped and re-created by the tests.
PG_TEST_URL ?= postgresql://postgres@127.0.0.1:5432/catalog_test
# podman-compose's own virtual environment (.ci/install-container-tools), outside the project.
CONTAINER_TOOLS_DIR ?= $(HOME)/.cache/catalog-container-tools

.DEFAULT_GOAL := help
.PHONY: help install run migrate seed clean test-notice test test-sqlite test-postgres test-scale test-container lint format bench bench-listing openapi screenshot

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-14s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.runtime-installed: requirements.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

$(VENV)/.dev-installed: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@ $(VENV)/.runtime-installed

install: $(VENV)/.runtime-installed ## Create .venv and install the runtime requirements

run: $(VENV)/.runtime-installed ## Apply migrations, then serve the API on HOST:PORT (SQLite by default)
	$(BIN)/alembic upgrade head
	$(BIN)/python main.py

migrate: $(VENV)/.runtime-installed ## Apply migrations to DATABASE_URL
	$(BIN)/alembic upgrade head

seed: migrate ## Add a small demo catalog to DATABASE_URL (again: adds nothing)
	$(BIN)/python seed.py

clean: ## Remove the local SQLite database and the caches (not .venv)
	rm -f catalog.db catalog.db-wal catalog.db-shm
	rm -rf .pytest_cache .mypy_cache .ruff_cache
	find . -name __pycache__ -not -path './.venv/*' -prune -exec rm -rf {} +

test: test-notice test-sqlite test-postgres test-scale ## Run the suite on SQLite, PostgreSQL, scaling out (the image: test-container)

test-notice:
	@echo "make test: installs PgBouncer and HAProxy from Debian's packages if missing (apt-get)," \
	  "and drops and re-creates the database of PG_TEST_URL ($(PG_TEST_URL)) and others beside it."

test-sqlite: $(VENV)/.dev-installed ## Run the test suite on SQLite (in memory)
	$(BIN)/python -m pytest

test-postgres: $(VENV)/.dev-installed ## Run the test suite on PostgreSQL (PG_TEST_URL)
	TEST_DATABASE_URL=$(PG_TEST_URL) $(BIN)/python -m pytest

test-scale: $(VENV)/.dev-installed ## Scaling out: replicas, PgBouncer, HAProxy, several instances
	bash .ci/install-scale-tools
	$(BIN)/python -m pytest tests/scale

test-container: $(VENV)/.dev-installed ## Build the image, run it and compose.yaml with podman (installed if missing)
	CONTAINER_TOOLS_DIR=$(CONTAINER_TOOLS_DIR) bash .ci/install-container-tools
	CONTAINER_TOOLS_DIR=$(CONTAINER_TOOLS_DIR) TEST_DATABASE_URL=$(PG_TEST_URL) \
		$(BIN)/python -m pytest tests/container

$(VENV)/.bench-installed: requirements.txt requirements-dev.txt bench/requirements.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r bench/requirements.txt
	touch $@ $(VENV)/.dev-installed $(VENV)/.runtime-installed

# The previous version, benchmarked beside this one: a worktree of its commit, on this .venv.
BENCH_OLD_REF ?= 638b1fc
BENCH_OLD_DIR := .bench-old

$(BENCH_OLD_DIR):
	git worktree add --detach $(BENCH_OLD_DIR) $(BENCH_OLD_REF)

bench: $(VENV)/.bench-installed $(BENCH_OLD_DIR) ## Throughput vs the previous version and what users pick instead, with wrk (~30 min)
	@command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk"; exit 1; }
	$(BIN)/python bench/throughput.py --old-dir $(BENCH_OLD_DIR) --workers 1 2 --rounds 2 \
	  --duration 8 --scenarios "GET one" "list 100" POST "POST idempotent" "mixed 80/20"

bench-listing: $(VENV)/.bench-installed ## Listing latency on 1M products (PostgreSQL, BENCH_DATABASE_URL)
	$(BIN)/python bench/listing.py

lint: $(VENV)/.dev-installed ## ruff check, ruff format --check, mypy --strict
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .

format: $(VENV)/.dev-installed ## Apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

openapi: $(VENV)/.dev-installed ## Refresh the committed OpenAPI snapshot (openapi.json)
	$(BIN)/python -c "import json, main; print(json.dumps(main.app.openapi(), indent=2, ensure_ascii=False))" > openapi.json

screenshot: $(VENV)/.dev-installed ## Refresh docs/screenshot-docs.png (the browser test's /docs)
	UPDATE_SCREENSHOT=1 $(BIN)/python -m pytest -q tests/test_browser.py -k lists_operations
