# Two entry points: `make results` (default results) and `make test` (test suite).
# Each creates the virtual environment in .venv if it is missing.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed
CORES ?= all
export PATH := $(BIN):$(PATH)

.PHONY: results test test-fast lint env clean-results

$(STAMP): envs/requirements.txt envs/constraints.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -r envs/requirements.txt -c envs/constraints.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

env: $(STAMP)

results: $(STAMP)
	snakemake --cores $(CORES)

test: $(STAMP)
	$(BIN)/python -m pytest

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow and not gpu"

lint: $(STAMP)
	$(BIN)/ruff check vmp tests benchmarks notebooks
	$(BIN)/ruff format --check vmp tests benchmarks notebooks
	snakemake --lint --cores 1

clean-results:
	rm -rf results .snakemake
