# The two commands: `make run` (the main job) and `make test` (the whole suite).
# Both build a local virtual environment on first use; nothing is installed globally.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: run test bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(TEST_STAMP): pyproject.toml $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

run: $(STAMP)
	$(BIN)/statewright check --all

test: $(TEST_STAMP)
	$(BIN)/python -m pytest
	$(BIN)/python -m mypy

bench: $(TEST_STAMP)
	$(BIN)/python tests/benchmarks/bench_checker.py
	$(BIN)/python tests/benchmarks/bench_step.py
	$(BIN)/python tests/benchmarks/bench_store.py
	$(BIN)/python tests/benchmarks/bench_liveness.py
	$(BIN)/python tests/benchmarks/bench_search_core.py
	$(BIN)/python tests/benchmarks/bench_monolithic.py
	$(BIN)/python tests/benchmarks/bench_workers.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache
