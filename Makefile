# The two commands a new machine needs: `make run` and `make test`. Everything else is a helper.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: run test install install-demo install-test assets lint graph

run: install install-demo assets
	$(PY) scripts/run.py

test: install-test assets
	bash scripts/test.sh

$(VENV)/.runtime: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.test: pyproject.toml $(VENV)/.runtime
	$(PY) -m pip install --quiet -e ".[test]"
	touch $@

$(VENV)/.demo: pyproject.toml $(VENV)/.runtime
	$(PY) -m pip install --quiet -e ".[demo]"
	touch $@

install: $(VENV)/.runtime
install-demo: $(VENV)/.demo
install-test: $(VENV)/.test

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

static/vendor/nhsuk/.copied: node_modules/.installed scripts/copy-assets.mjs
	npm run --silent copy-assets
	touch $@

assets: static/vendor/nhsuk/.copied

lint: install-test
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

graph: install
	$(PY) manage.py graph_transitions brokerage.CarePlan -o docs/care-plan-states.png
