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
EPOCHS ?= 200
RUN_FLAGS ?=
RUN_NAME ?= cnn7-full
else
EPOCHS ?= 4
RUN_FLAGS ?= --train-subset 20000
RUN_NAME ?= cnn7-quick
endif

.DEFAULT_GOAL := help
.PHONY: help install run test test-fast lint format bench clean

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  %-10s %s\n", $$1, $$2}'
	@echo "  make run FULL=1   trains the paper's full recipe (200 epochs, 40k images)"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

install: $(STAMP) ## Create .venv and install orisel with its dev tools

run: $(STAMP) ## Train cnn7 on CIFAR-10 for a few epochs and print test accuracy (FULL=1: paper size)
	$(BIN)/orisel train --data $(DATA) --out $(RUNS)/$(RUN_NAME) --epochs $(EPOCHS) $(RUN_FLAGS) --resume

lint: $(STAMP) ## ruff (lint + format check) and strict mypy
	$(BIN)/ruff check services tests bench
	$(BIN)/ruff format --check services tests bench
	$(BIN)/mypy

test: lint ## Lint, then the whole test suite (unit and integration)
	$(BIN)/pytest

test-fast: $(STAMP) ## Unit tests only
	$(BIN)/pytest -m "not integration"

format: $(STAMP) ## Apply ruff's fixes and formatting
	$(BIN)/ruff check --fix services tests bench
	$(BIN)/ruff format services tests bench

bench: $(STAMP) ## Benchmarks: ratios measured side by side (see docs/benchmarks.md)
	$(BIN)/python bench/bench_training.py --data $(DATA)

clean: ## Remove caches (not .venv, not runs/)
	rm -rf .pytest_cache .mypy_cache .ruff_cache build
