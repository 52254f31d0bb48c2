# pvdm: the two commands a new user needs are `make demo` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

UV ?= $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
export UV_COMPILE_BYTECODE := 1
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := true
export GX_ANALYTICS_ENABLED := false
export RAY_USAGE_STATS_ENABLED := 0
# OpenMP's default busy-waiting makes multi-threaded torch 10-30x slower when cores are shared (measured here).
export OMP_WAIT_POLICY := PASSIVE

.PHONY: help uv install test lint format bench demo compare clean services services-stop serve

help: ## list the targets
	@grep -E '^[a-z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

uv: ## install uv from PyPI if it is missing
	@command -v $(UV) >/dev/null 2>&1 || python3 -m pip install --user --quiet uv

install: uv ## create .venv from uv.lock (exact versions)
	$(UV) sync --frozen

test: install ## install, lint, check the import contract and run the test suite (CPU)
	$(UV) run --frozen ruff check .
	$(UV) run --frozen lint-imports
	$(UV) run --frozen pytest

lint: install ## ruff + the import-linter contract
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .
	$(UV) run --frozen lint-imports

format: install ## apply ruff's fixes and formatting
	$(UV) run --frozen ruff check --fix .
	$(UV) run --frozen ruff format .

bench: install ## speed and memory benchmarks (prints a table; see bench/README.md)
	$(UV) run --frozen python -m bench.models

services: install ## start MLflow, Prefect and an S3 server on loopback (no containers); writes .services/env
	$(UV) run --frozen python -m pipelines.services start

services-stop: ## end exactly the processes `make services` started
	$(UV) run --frozen python -m pipelines.services stop

serve: install ## serve the Prefect deployments pvdm/full and pvdm-retrain/scheduled (needs PREFECT_API_URL)
	$(UV) run --frozen python -m pipelines.deployments serve

demo: install ## install, build the embedded dataset, run the whole pipeline (dvc repro) on CPU, show the results
	@test -n "$$(ls -A data/raw 2>/dev/null)" || $(UV) run --frozen pvdm synth data/raw --videos 32 --size 64 --frames 64
	@$(UV) run --frozen python -m pipelines.raw_links  # a broken link in data/raw would stop DVC before any stage
	PVDM_PIPELINE_ID=demo-$$(date +%Y%m%d-%H%M%S) $(UV) run --frozen dvc repro
	@$(UV) run --frozen python -m pipelines.summary

compare: install ## every family on the embedded dataset under one protocol (after make demo): data/compare/compare.md
	$(UV) run --frozen pvdm compare

clean: ## remove caches (not data or MLflow runs)
	rm -rf .pytest_cache .ruff_cache
