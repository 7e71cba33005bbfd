# Two commands for people: `make demo` and `make test`. Every target bootstraps what it needs.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= python3.11
UV_VERSION := 0.13.9
VENV := .venv
INFRA_VENV := .venv-infra
UV := $(or $(shell command -v uv 2>/dev/null),.venv-uv/bin/uv)
PYTEST_ARGS ?=
# LocalStack instead of moto (docs/emulators.md): the integration suite and the demo's data path...
LOCALSTACK_TESTS ?= tests/integration tests/e2e/test_demo.py
# ...and the parity subset .ci/run runs: the stack, CDC sink + verify, dlt loads, a dbt backfill, listings
LOCALSTACK_PARITY := \
	tests/integration/test_stack.py::test_every_service_answers \
	tests/integration/test_stack.py::test_missing_resources_show_in_status_and_up_repairs_them \
	tests/integration/test_stack_external.py::test_up_uses_the_external_endpoint_and_creates_its_resources \
	tests/integration/test_cdc.py::test_snapshot_then_streaming_inserts_updates_deletes \
	tests/integration/test_dlt_dynamodb.py::test_dynamodb_load_merge_and_incremental \
	tests/integration/test_dlt_landing.py::test_clickstream_exactly_once_with_quarantine \
	tests/integration/test_dbt_local.py::test_daily_revenue_reconciles_with_python \
	tests/integration/test_listings.py

.PHONY: help install system-deps demo test test-unit test-containers test-localstack test-localstack-parity \
	localstack lint format bench clean

help: ## Show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

.venv-uv/bin/uv:
	$(PYTHON) -m venv .venv-uv
	.venv-uv/bin/pip install -q uv==$(UV_VERSION)

$(VENV)/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --python $(PYTHON)
	@touch $@

$(INFRA_VENV)/.synced: tools/requirements-infra.txt | $(UV)
	$(UV) venv --allow-existing --python $(PYTHON) $(INFRA_VENV)
	$(UV) pip install --python $(INFRA_VENV)/bin/python -r tools/requirements-infra.txt
	@touch $@

install: $(VENV)/.synced ## Create .venv from uv.lock

system-deps: ## Install Debian packages the stack needs (PostgreSQL, Java, Chromium) if missing
	@bash scripts/system-deps.sh

demo: install system-deps ## Run the whole lakehouse demo, then serve the Dagster UI on 127.0.0.1:3000
	$(VENV)/bin/lakehouse demo

# make test runs the suite in TEST_WORKERS processes (pytest-xdist), each with its own embedded stack on
# free ports
TEST_WORKERS ?= 2

# `--dist loadscope` hands out the worker groups of tests/conftest.py (a file; the e2e, infra and
# containers directories one group each): the demo and the Terraform apply run once, not in each process.
test: install system-deps $(INFRA_VENV)/.synced ## Run the whole test suite (unit, integration, e2e, infra)
	$(VENV)/bin/pytest -n $(TEST_WORKERS) --dist loadscope --no-loadscope-reorder $(PYTEST_ARGS)

# The CDC and dlt integration tests again, with the session's services from containers (testcontainers).
CONTAINER_STACK_TESTS := tests/integration/test_cdc.py tests/integration/test_dlt_dynamodb.py \
	tests/integration/test_dlt_landing.py tests/integration/test_dlt_marketing.py

test-containers: install system-deps $(INFRA_VENV)/.synced ## Build the images; compose, ECS-role and testcontainers tests (Docker engine; started as root if none runs)
	bash scripts/containers.sh engine
	bash scripts/containers.sh build
	LAKEHOUSE_TEST_STACK=containers $(VENV)/bin/pytest -n $(TEST_WORKERS) --dist loadscope --no-loadscope-reorder \
		tests/containers $(CONTAINER_STACK_TESTS) $(PYTEST_ARGS)

test-unit: install ## Only the fast unit tests
	$(VENV)/bin/pytest tests/unit $(PYTEST_ARGS)

localstack: install ## Install LocalStack 4.14 into its own environment (.venv-localstack) if missing
	@bash scripts/system-deps.sh localstack
	PATH="$(abspath $(dir $(UV))):$$PATH" $(VENV)/bin/lakehouse stack install-localstack

test-localstack: install system-deps localstack ## Integration suite + the demo's data path on LocalStack
	LAKEHOUSE_EMULATOR=localstack $(VENV)/bin/pytest $(LOCALSTACK_TESTS) $(PYTEST_ARGS)

test-localstack-parity: ## The LocalStack parity subset .ci/run runs (a few minutes)
	$(MAKE) test-localstack LOCALSTACK_TESTS="$(LOCALSTACK_PARITY)"

lint: install ## ruff + mypy + import-linter (core never imports the tooling) + sqlfluff (dbt models) + yamllint
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	$(VENV)/bin/sqlfluff lint models --processes 2
	$(VENV)/bin/yamllint --strict .

format: install ## Apply ruff's formatting and fixes
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: install system-deps ## Run the benchmarks; saves figures to benchmarks/results/, then the report (results/report/)
	$(VENV)/bin/python -m benchmarks
	$(VENV)/bin/python -m benchmarks report

clean: ## Stop the local stack and delete all local state and virtualenvs
	-$(VENV)/bin/lakehouse down --purge
	rm -rf $(VENV) $(INFRA_VENV) .venv-localstack .venv-uv target dbt_packages
