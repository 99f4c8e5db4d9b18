# Two commands for a fresh machine (see README):
#   make lab    install everything, start the stack, open JupyterLab on notebooks/
#               (make lab HEADLESS=1 prints the URL instead of opening a browser;
#                make lab PORT=8890 serves JupyterLab on another port, as does SECKILL_LAB_PORT;
#                make lab LANG=zh opens the 中文 edition with JupyterLab's menus in Chinese, as a zh_* locale does)
#   make test   install everything, then run every test against real services
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HEADLESS ?=
PORT ?=
PYTEST_ARGS ?=

.PHONY: lab test servers tools down clean labs-sync notebooks help bench mutants hub hub-venv

help:
	@echo "make lab [HEADLESS=1] [PORT=18888] [LANG=zh]   start the stack and JupyterLab on the course (LANG=zh: 中文)"
	@echo "make test               run every test (real Redis, RabbitMQ, PostgreSQL)"
	@echo "make down               stop everything this checkout started"
	@echo "make bench              optional: measure every tier and this machine's ceilings (< 10 min)"
	@echo "make mutants            optional: the graders' mutation score per lab (cosmic-ray, ~1 h)"
	@echo "make hub                optional, hub hosts: jupyterhub, nbgitpuller (pip) + configurable-http-proxy (npm)"

# The venv, rebuilt when pyproject.toml changes.
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' || \
	  { echo "seckill: Python 3.11 or newer is needed ($(PYTHON) is $$($(PYTHON) -V 2>&1)); install it or run make PYTHON=python3.12"; exit 1; }
	@echo "• creating $(VENV) and installing the course's Python packages …"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --disable-pip-version-check --progress-bar off -q --upgrade pip
	@set -o pipefail; $(BIN)/python -m pip install --disable-pip-version-check --progress-bar off -e . 2>&1 \
	  | tee $(VENV)/pip.log | { grep --line-buffered -E '^(Collecting|Successfully installed)' | cut -c1-110 | sed 's/^/  /' || true; } \
	  || { tail -20 $(VENV)/pip.log; echo "seckill: installing the Python packages failed; the whole log is in $(VENV)/pip.log"; exit 1; }
	@touch $(STAMP)

# Server binaries: installed with apt as root, otherwise one line says what to install.
servers: $(STAMP)
	@$(BIN)/seckill install-servers

# Servers plus the tools the tests use (docker-compose, wrk, redis-benchmark).
tools: $(STAMP)
	@$(BIN)/seckill install-servers --with-tools

lab: servers
	@$(BIN)/seckill lab $(if $(HEADLESS),--headless,) $(if $(filter command line,$(origin PORT)),--port $(PORT),) \
	  $(if $(filter command line,$(origin LANG)),--lang $(if $(filter zh%,$(LANG)),zh,en),)

test: tools
	@$(BIN)/python tools/make_labs.py --check
	@$(BIN)/python tools/make_notebooks.py --check
	@$(BIN)/python tools/run_tests.py $(PYTEST_ARGS)

# Optional measurement, not a set-up step: the tier ladder under one wrk load (seckill bench).
bench: tools
	@$(BIN)/seckill bench

# Optional measurement of the graders: automatic mutants of solutions/ each graded (tools/mutants.py).
mutants: tools
	@$(BIN)/python tools/mutants.py $(LABS)

labs-sync: $(STAMP)
	@$(BIN)/python tools/make_labs.py

# Both editions of the course from notebooks/src/*.md: notebooks/*.ipynb (English), notebooks/zh/*.ipynb (中文).
# After editing an English .ipynb directly: .venv/bin/python tools/make_notebooks.py --ingest
notebooks: $(STAMP)
	@$(BIN)/python tools/make_notebooks.py

# Optional, only on a workshop's hub host (docs/workshop.md): JupyterHub and nbgitpuller from PyPI and
# configurable-http-proxy from npm (into .venv/node_modules, where `seckill workshop` looks).
hub: tools
	@$(BIN)/python -m pip install --disable-pip-version-check -q -e '.[hub]'
	@npm install --no-fund --no-audit --prefix $(VENV) configurable-http-proxy
# The hub's learners run the course from an installation every user can execute: when $(VENV)'s
# Python lives under a private home (pyenv under /root), make one from the system Python.
hub-venv: hub
	@test -x .hubvenv/bin/python || /usr/bin/python3 -m venv .hubvenv
	@.hubvenv/bin/python -m pip install --disable-pip-version-check -q -e '.[hub]'

down:
	@test -x $(BIN)/seckill && $(BIN)/seckill down || true

clean: down
	rm -rf $(VENV) .run
