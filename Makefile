# jsweep developer commands. `make help` lists them.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The torch build for this machine: CPU machines take the local CPU wheel (no CUDA download).
TORCH_SPEC ?= torch==2.13.0
ENV_STAMP := $(VENV)/.jsweep-env

.DEFAULT_GOAL := help

help: ## show this help
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

$(ENV_STAMP): pyproject.toml requirements/constraints.txt
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH_SPEC)"
	$(BIN)/pip install -q setuptools wheel
	# DeepSpeed builds against the torch above (no build isolation: that would fetch CUDA torch), ops JIT-compiled on use.
	DS_BUILD_OPS=0 $(BIN)/pip install -q --no-build-isolation -c requirements/constraints.txt deepspeed
	$(BIN)/pip install -q -c requirements/constraints.txt -e ".[eval,dev,deepspeed]"
	@touch $(ENV_STAMP)

env: $(ENV_STAMP) ## create .venv with everything installed (torch pinned first)

sweep: env ## run the mission sweep on the embedded default (6 cells, offline)
	$(BIN)/python -m jsweep -m dataset=dolly,ichikara,oasst lr=1e-5,1e-4

judged-sweep: env ## the embedded default scored by a local judge (transformers serve): ELYZA, pairwise, grading sheet, samples
	PY=$(BIN)/python scripts/judged_sweep.sh

lint: env ## ruff: lint and formatting check (package, tests, benchmarks, scripts)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: env ## ruff: fix what can be fixed and format
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

typecheck: env ## mypy over jsweep/ and hydra_plugins/
	$(BIN)/mypy

test: env ## run the fast CPU test suite (two pytest workers; the Slurm tests share one)
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup --durations=15

test-slow: env ## run the slow tests too (full sweeps, multi-process DeepSpeed)
	$(BIN)/python -m pytest -q -m "not gpu"

test-gpu: env ## run the GPU tests (on a GPU machine)
	$(BIN)/python -m pytest -q -m gpu

mutation: env ## mutation score of the core modules (mutmut; CPU-heavy, outside CI): MODULES="identity redaction"
	env -u PYTHONPATH $(BIN)/python scripts/mutation.py $(MODULES)

ui: env ## start the MLflow UI on http://127.0.0.1:5000 (Ctrl-C stops it cleanly)
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false exec $(BIN)/mlflow ui --host 127.0.0.1 --port 5000 \
		--backend-store-uri "$${MLFLOW_TRACKING_URI:-sqlite:///$(CURDIR)/mlflow.db}"

clean: ## remove sweep outputs and the embedded MLflow store (keeps .venv)
	rm -rf outputs mlflow.db mlruns

.PHONY: help env lint format typecheck sweep judged-sweep test test-slow test-gpu mutation ui clean
