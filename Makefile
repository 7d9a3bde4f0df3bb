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
EPOCHS ?= 200
TRAIN_FLAGS ?=
PERMUTATIONS ?= 1000
EVAL_FLAGS ?=
else
RUN ?= $(RUNS)/quick
EPOCHS ?= 3
TRAIN_FLAGS ?= --train-subset 20000
PERMUTATIONS ?= 200
EVAL_FLAGS ?= --test-subset 2000
endif
ORISEL := $(BIN)/orisel

.DEFAULT_GOAL := help
.PHONY: help install run test test-fast lint format bench clean protos

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  %-10s %s\n", $$1, $$2}'
	@echo "  make run FULL=1   the paper's full size (200 epochs on 40k images, full test set)"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

install: $(STAMP) ## Create .venv and install orisel with its dev tools

run: $(STAMP) ## The paper's analysis, short: train cnn7, tune, ablate, invariance, report (FULL=1: paper size)
	$(ORISEL) train --data $(DATA) --out $(RUN)/train --epochs $(EPOCHS) $(TRAIN_FLAGS) --resume
	$(ORISEL) tune --checkpoint $(RUN)/train/best.pt --data $(DATA) $(EVAL_FLAGS) --permutations $(PERMUTATIONS) --out $(RUN)/tune
	$(ORISEL) ablate --checkpoint $(RUN)/train/best.pt --data $(DATA) $(EVAL_FLAGS) --scores $(RUN)/tune --out $(RUN)/ablate
	$(ORISEL) invariance --checkpoint $(RUN)/train/best.pt --data $(DATA) $(EVAL_FLAGS) --scores $(RUN)/tune --out $(RUN)/invariance
	$(ORISEL) report --run $(RUN)

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

clean: ## Remove caches (not .venv, not runs/)
	rm -rf .pytest_cache .mypy_cache .ruff_cache build
