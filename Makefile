# TaskPlatform developer entry points. `make run` and `make test` work on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
PORT ?= 8000

.PHONY: help deps run test test-fast e2e lint format bench-api bench-migration bench-operator bench-e2e bench-backup crds cluster-up cluster-down operator wheels images chart-check clean

help:
	@echo "make run        the API on the embedded SQLite default at http://127.0.0.1:$(PORT) (docs at /docs)"
	@echo "make test       install what is needed, lint, type-check, run every test (throwaway PostgreSQL, kind, a local node)"
	@echo "make e2e        the end-to-end suite on a kind cluster of three nodes (E2E_CLUSTER=local: one real node on this machine; KEEP=1 keeps it)"
	@echo "make lint       ruff (lint + format check) and mypy"
	@echo "make format     apply ruff's fixes and formatting"
	@echo "make images     taskplatform-api, -operator, -postgres images on a local Debian base (starts dockerd)"
	@echo "make chart-check  helm lint --strict, template, server-side validation, install/uninstall on the local control plane"
	@echo "make crds       regenerate crds/*.yaml from the operator's typed models"
	@echo "make cluster-up local control plane (etcd, kube-apiserver, controller-manager, scheduler, kwok); .cluster/kubeconfig"
	@echo "                CLUSTER_NODE=local: one real node instead of kwok (containerd, kubelet, kube-proxy, CoreDNS; root)"
	@echo "make cluster-down"
	@echo "make operator   run the operator against \$$KUBECONFIG (else ~/.kube/config, else .cluster/kubeconfig)"
	@echo "make bench-api  API throughput/latency against the bare framework ceiling (writes docs/benchmarks.md)"
	@echo "make bench-migration  MongoDB -> PostgreSQL migration rate against read and COPY ceilings"
	@echo "make bench-operator   apply-to-Ready time for 1 and 50 TaskPlatforms on the local control plane"
	@echo "make bench-e2e  apply-to-Ready on a real local node, kind and kwok; HPA scale-up on kind; API list through its Service (1-3 pods) vs direct"
	@echo "make bench-backup  backup/restore of 1M tasks through the operator's Jobs vs pg_dump/pg_restore directly"

# Re-install only when the dependency list changes.
$(INSTALLED): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $@

deps: $(INSTALLED)

run: deps
	$(BIN)/taskplatform-api migrate
	exec $(BIN)/taskplatform-api serve --host 127.0.0.1 --port $(PORT)

lint: deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: deps
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: deps lint images
	scripts/system-deps.sh postgresql wrk node
	scripts/build-ferretdb.sh >/dev/null
	scripts/build-s3server.sh >/dev/null
	scripts/build-k8s.sh >/dev/null
	scripts/build-node.sh >/dev/null
	scripts/build-netpol.sh >/dev/null
	scripts/build-helm.sh >/dev/null
	scripts/build-kind.sh >/dev/null
	scripts/build-kind-node.sh >/dev/null
	scripts/run-tests.sh $(BIN)/pytest $(PYTEST_ARGS)

# Pods that really run (docs/e2e.md); `make test` runs the same suite on a local node too.
e2e: deps images
	scripts/system-deps.sh node
	scripts/e2e.sh

test-fast: deps
	$(BIN)/pytest -m "not slow and not node and not docker" $(PYTEST_ARGS)

# The benches run as scripts beside their shared library (bench/benchlib.py) and import the tests' throwaway servers
# (tests/helpers: helpers.pgcluster, helpers.kubecluster...), whose folder PYTHONPATH names as pyproject names it to
# pytest (`pythonpath`).
BENCH_PYTHON := PYTHONPATH=$(CURDIR)/tests $(BIN)/python

bench-migration: deps
	scripts/system-deps.sh postgresql wrk
	scripts/build-ferretdb.sh >/dev/null
	$(BENCH_PYTHON) bench/migration_bench.py $(BENCH_ARGS)

bench-api: deps
	scripts/system-deps.sh postgresql wrk
	$(BENCH_PYTHON) bench/api_bench.py $(BENCH_ARGS)

bench-e2e: deps images
	scripts/system-deps.sh wrk node
	scripts/build-k8s.sh >/dev/null
	scripts/build-node.sh >/dev/null
	scripts/build-kind.sh >/dev/null
	scripts/build-kind-node.sh >/dev/null
	$(BENCH_PYTHON) bench/e2e_bench.py $(BENCH_ARGS)

bench-backup: deps images
	scripts/system-deps.sh node
	scripts/build-k8s.sh >/dev/null
	scripts/build-node.sh >/dev/null
	scripts/build-s3server.sh >/dev/null
	scripts/build-helm.sh >/dev/null
	$(BENCH_PYTHON) bench/backup_bench.py $(BENCH_ARGS)

bench-operator: deps
	scripts/build-k8s.sh >/dev/null
	$(BENCH_PYTHON) bench/operator_bench.py $(BENCH_ARGS)

cluster-up:
	scripts/cluster-up.sh

cluster-down:
	scripts/cluster-down.sh

operator: deps
	@if [ -z "$$KUBECONFIG" ] && [ ! -f "$$HOME/.kube/config" ]; then export KUBECONFIG=$(CURDIR)/.cluster/kubeconfig; fi; \
	  exec $(BIN)/taskplatform-operator --log-format plain --liveness http://127.0.0.1:8080/healthz

# Every wheel the images install, resolved here (the image builds need no index).
wheels: deps
	$(BIN)/python -m pip wheel -q --wheel-dir build/wheels '.[operator]'

images: wheels
	scripts/system-deps.sh docker debootstrap
	scripts/docker-up.sh
	scripts/build-images.sh

chart-check: deps
	scripts/build-k8s.sh >/dev/null
	scripts/build-helm.sh >/dev/null
	$(BIN)/pytest tests/charts $(PYTEST_ARGS)

crds: deps
	$(BIN)/python -m taskplatform.operator.crdgen crds charts/taskplatform/crds

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache build *.egg-info taskplatform.db*
