# orisel: `make run` and `make test` are the whole set-up on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

# The main job: where the data is and how big a run (configuration, not code).
DATA ?= ../shared/datasets/cifar10-jpeg.tar.gz
RUNS ?= runs
ifeq ($(FULL),1)
RUN ?= $(RUNS)/full
PAPER_FLAGS ?= --label-corruptions 0,0.1,0.2,0.4 --seeds 0,1 --epochs 200 --permutations 1000
else
RUN ?= $(RUNS)/quick
PAPER_FLAGS ?= --label-corruptions 0,0.2,0.4 --seeds 0 --epochs 2 --train-subset 10000 \
	--test-subset 1000 --permutations 100
endif
# The reproduction (docs/results/cifar10.md): trained runs and their analyses live outside
# the repository; the report's numbers are committed as docs/results/cifar10/data.json.
REPRO_RUNS ?= $(HOME)/orisel-runs/cifar10
REPRO_ANALYSIS ?= $(HOME)/orisel-analysis/cifar10
ORISEL := $(BIN)/orisel

.DEFAULT_GOAL := help
.PHONY: help install run reproduce report test test-fast lint format bench clean protos

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  %-10s %s\n", $$1, $$2}'
	@echo "  make run FULL=1   the paper's full size (4 corruption levels, 2 seeds, 200 epochs, all images)"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

install: $(STAMP) ## Create .venv and install orisel with its dev tools

run: $(STAMP) ## The paper's pipeline, short, in embedded mode (no servers); FULL=1: paper size
	$(ORISEL) up --paper --home $(RUN) --port 0 --data $(DATA) $(PAPER_FLAGS)

reproduce: $(STAMP) ## Analyse the trained runs in REPRO_RUNS into REPRO_ANALYSIS (hours on a CPU)
	PATH=$(abspath $(BIN)):$$PATH ORISEL_DATA=$(abspath $(DATA)) \
	  deploy/reproduce/cifar10.sh $(REPRO_RUNS) $(REPRO_ANALYSIS)
	$(ORISEL) paper-report --analysis $(REPRO_ANALYSIS) --out docs/results/cifar10.md \
	  --preface docs/results/cifar10-preface.md

report: $(STAMP) ## Rebuild docs/results/cifar10.md and its plots from the committed data.json
	$(ORISEL) paper-report --from-data docs/results/cifar10/data.json \
	  --out docs/results/cifar10.md --preface docs/results/cifar10-preface.md

protos: $(STAMP) ## Regenerate services/orisel/api from protos/ (commit the result)
	$(BIN)/python protos/generate.py

lint: $(STAMP) ## ruff, strict mypy, and generated gRPC code up to date with protos/
	$(BIN)/python protos/generate.py --check
	$(BIN)/ruff check services tests bench protos deploy
	$(BIN)/ruff format --check services tests bench protos deploy
	$(BIN)/mypy

test: lint ## Lint, then the whole test suite (unit and integration)
	$(BIN)/pytest

test-fast: $(STAMP) ## Unit tests only
	$(BIN)/pytest -m "not integration"

format: $(STAMP) ## Apply ruff's fixes and formatting
	$(BIN)/ruff check --fix services tests bench deploy
	$(BIN)/ruff format services tests bench deploy

BENCH_IMAGES ?= 2000
bench: $(STAMP) ## Benchmarks: ratios measured side by side (see docs/benchmarks.md; BENCH_IMAGES=10000)
	$(BIN)/python bench/bench_training.py --data $(DATA)
	$(BIN)/python bench/bench_analysis.py --images $(BENCH_IMAGES)
	$(BIN)/python bench/bench_services.py --data $(DATA) --images $(BENCH_IMAGES)

clean: ## Remove caches (not .venv, not runs/)
	rm -rf .pytest_cache .mypy_cache .ruff_cache build
