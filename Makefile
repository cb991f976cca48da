PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup services test test-quick compose-test lock lint demo bench clean

setup: $(BIN)/hpo

# Python caches a module's bytecode at its first import, unless PYTHONDONTWRITEBYTECODE is set
# (as on this machine): then each of the few hundred `hpo` processes the tests start compiles
# what it imports again. Every command make runs caches it.
unexport PYTHONDONTWRITEBYTECODE

# pip installs without compiling (it compiles file by file on one core, all 14 000 files); the
# import below then caches the bytecode of what the service and its tests import, about 3 300
# modules, in one process before any test starts (the test processes would each compile them
# at once). Whatever it misses is cached at its first import. All of .venv/lib with compileall
# on both cores took 21 s and 40 CPU-s here (2026-12-05); this import, 14 s on one core.
WARM_IMPORTS := hpo.cli, hpo.worker, hpo.evaluate, models.training, metrics, ot, \
	matplotlib.pyplot, pennylane, optuna_dashboard, pytest, xdist, playwright.sync_api
$(BIN)/hpo: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --no-compile -e '.[test]'
	$(BIN)/python -c 'import $(WARM_IMPORTS)'
	touch $(BIN)/hpo

# PostgreSQL on 127.0.0.1:5432 if it is down, Debian's Chromium and docker-compose if missing.
services:
	.ci/services

# Three test processes (pytest-xdist) on two cores: most slow tests wait on workers, heartbeats
# and servers, so with three the cores stay busy (.ci/test-all says what was measured). The
# compose test (a real Docker engine) runs beside them.
# The 25 slowest tests and the 25 that used the most CPU (own and child processes: CI here is
# CPU-bound, so that is what it pays) are listed at the end, so a slow CI run says where its
# time went.
test: setup services
	$(BIN)/ruff check .
	.ci/test-all

# The inner loop: every test marked unit (in process: no server, no subprocess, no browser)
# that is not slow; tests/conftest.py says how tests declare their tier. Two processes, one per
# core: each unit test computes (one BLAS thread each), so two halve the wall time less the
# workers' start (README).
test-quick: setup
	$(BIN)/pytest -q -n 2 -m "unit and not slow"

# docker-compose.yml on a private Docker engine (root; .ci/docker-engine installs and starts it,
# and builds stand-in base images from Debian packages once, cached in /var/cache/qgan-hpo-docker).
# `make test` runs it too (.ci/test-all); cached it takes about 10 minutes, cold about 30 (README).
# It drives Debian's docker-compose 1.29; QGAN_HPO_COMPOSE=v2 make compose-test drives Compose v2.
compose-test: setup
	$(BIN)/pytest -q -m docker -s tests/test_compose_engine.py

# requirements.lock: the runtime dependencies pinned at the venv's versions (Dockerfile layer).
lock: setup
	$(BIN)/python .ci/lock-requirements > requirements.lock

lint: setup
	$(BIN)/ruff check .

demo: setup
	$(BIN)/hpo run studies/quickstart.yaml --workers 2

bench: setup
	$(BIN)/python bench/kl_estimators.py
	$(BIN)/python bench/quantum_step.py
	$(BIN)/python bench/convergence.py

clean:
	rm -rf $(VENV) runs build *.egg-info
