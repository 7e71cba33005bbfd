# Two commands for people: `make demo` and `make test`. Every target bootstraps what it needs.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= python3.11
UV_VERSION := 0.13.9
VENV := .venv
INFRA_VENV := .venv-infra
UV := $(or $(shell command -v uv 2>/dev/null),.venv-uv/bin/uv)
PYTEST_ARGS ?=

.PHONY: help install system-deps demo test test-unit lint format bench clean

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

test: install system-deps $(INFRA_VENV)/.synced ## Run the whole test suite (unit, integration, e2e, infra)
	$(VENV)/bin/pytest $(PYTEST_ARGS)

test-unit: install ## Only the fast unit tests
	$(VENV)/bin/pytest tests/unit $(PYTEST_ARGS)

lint: install ## ruff + mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: install ## Apply ruff's formatting and fixes
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: install system-deps ## Run the benchmarks; prints and saves figures to benchmarks/results/
	$(VENV)/bin/python -m benchmarks

clean: ## Stop the local stack and delete all local state and virtualenvs
	-$(VENV)/bin/lakehouse down --purge
	rm -rf $(VENV) $(INFRA_VENV) .venv-uv target dbt_packages
