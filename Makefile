# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
# Every target builds its own virtual environment from the pinned lock file first.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
UV_VERSION := 0.13.8
export SPOTIFY_DATA_DIR ?= $(CURDIR)/.data
## make test's pytest-xdist workers: one per core of the 2-core CI machine (see docs/testing.md).
TEST_WORKERS ?= 2

.PHONY: venv demo cloud-demo dev soak dashboard test lint typecheck bench lock clean compose-test

$(STAMP): pyproject.toml requirements.lock
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --disable-pip-version-check "uv==$(UV_VERSION)"
	$(BIN)/uv pip install -q --python $(BIN)/python -r requirements.lock
	$(BIN)/uv pip install -q --python $(BIN)/python --no-deps -e .
	@# uv keeps one pyspark wheel build (~1.4 GB) per revalidation of its sdist: drop the stale ones.
	@$(BIN)/uv cache prune -q || echo "venv: uv cache prune failed; free space with: $(BIN)/uv cache clean pyspark" >&2
	@touch $@

venv: $(STAMP)

## Run the whole pipeline end to end on the local default (sandbox API, DuckDB, local Spark).
demo: venv
	$(BIN)/spotify-assets demo

## The cloud deployment on loopback: GCS + BigQuery emulators, Spark standalone, Postgres-backed
## Dagster, sandbox API; SPOTIFY_DEPLOYMENT=cloud. Stops everything it started. FRESH=1 starts over.
cloud-demo: venv
	$(BIN)/python scripts/cloud_demo.py $(if $(FRESH),--fresh,)

## The Dagster UI with the schedule and sensor, against the sandbox API on a real-time clock;
## PORT= the UI's port (default 3000). `exec`: the command is make's child itself, so the SIGTERM
## make forwards (`kill` of make's pid by a script that ran `make dev &`) reaches the command that
## stops the whole tree; SIGINT and SIGHUP, which make keeps, the command sees make receive.
dev: venv
	exec $(BIN)/spotify-assets dev $(if $(PORT),--port $(PORT),)

## The chaos soak (issue 27): `spotify-assets dev` against the sandbox on an accelerated clock
## (30 s a simulated hour), faults on a schedule drawn from SEED, then the verdict line and JSON:
## the warehouse against the sandbox's truth per listener. HOURS= simulated hours (168: ~1.5 h).
soak: venv
	$(BIN)/python -m bench.soak --hours $(or $(HOURS),168) --seed $(or $(SEED),1)

## The Streamlit dashboard over the local warehouse (run `make demo` first), on 127.0.0.1 only;
## SPOTIFY_DASHBOARD_ADDRESS=0.0.0.0 serves it beyond this machine (see README "Sharing the dashboard").
dashboard: venv
	$(BIN)/python -m app.serve

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	$(BIN)/mypy

## Lint, type-check, then the whole test suite, the compose stack test included (2.5-3 min of it
## warm, ~15 after a dependency change; SPOTIFY_COMPOSE_TEST=0 switches that one off locally, a
## failure under CI). `.ci/run`
## calls exactly this.
test: venv
	bash scripts/test-services.sh
	$(MAKE) --no-print-directory lint typecheck
	$(BIN)/python -m pytest -p no:cacheprovider -q -rs --durations=25 -n $(TEST_WORKERS) --dist loadgroup

## The deployment for real: a private Docker engine, base images from Debian packages, the
## image from the wheelhouse, the compose stack on loopback, the pipeline run inside it twice
## (a restart in between), exact checks, teardown. `make test` runs it too
## (spotify_assets_tests/test_compose_stack.py). CLOUD=1: the stack in cloud mode against the
## GCS and BigQuery emulators. See README "Deploy with Docker".
compose-test: venv
	$(if $(CLOUD),SPOTIFY_STACK_DEPLOYMENT=cloud )bash scripts/compose-test.sh

## Benchmarks (QUICK=1 for the CI-sized run). dlt is the import alternative measured against;
## it is installed here only, not for the pipeline or the tests.
bench: venv
	$(BIN)/uv pip install -q --python $(BIN)/python "dlt[duckdb]==1.31.0"
	$(BIN)/python -m bench.run $(if $(QUICK),--quick,)

## Re-resolve the pinned lock file from pyproject.toml.
lock:
	$(BIN)/uv pip compile -q pyproject.toml --extra dev --python-version 3.11 -o requirements.lock

clean:
	rm -rf $(VENV) .venv-bqemulator .data .pytest_cache .mypy_cache .ruff_cache
