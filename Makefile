# The commands: `make run` (the main job), `make test` (the whole suite and mypy: the CI gate) and
# `make quick` (everything not marked slow, in under a minute: the loop to run while editing).
# Each builds a local virtual environment on first use; nothing is installed globally.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

# Keep compiled bytecode between runs even where the environment turns it off: without the
# __pycache__ folders every run recompiles the package and pytest re-rewrites every test module's
# asserts (collection ~5 s instead of ~1 s), and every CLI test's subprocess recompiles what it imports.
KEEP_BYTECODE := PYTHONDONTWRITEBYTECODE=
QUICK_LIMIT := 60
# More pytest arguments for `make quick`, e.g. `make quick ARGS="tests/kernel -x"` or `ARGS=--lf`.
ARGS ?=

.PHONY: run test quick bench clean

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

# On every core (pytest-xdist) as `make quick`: the suite's kill -9, race and cancellation tests hold under a
# neighbour's load, and 2 cores take it from about 8 minutes to about 4.5.
test: $(TEST_STAMP)
	$(KEEP_BYTECODE) $(BIN)/python -m pytest -n auto
	$(BIN)/python -m mypy

# Not mypy (that is the gate's job); the quick hypothesis profile (tests/conftest.py), on every core (pytest-xdist:
# the suite waits on disks, sockets and sleeps as much as it computes, so two cores nearly halve it). bash's `time`
# prints the wall time, also after a failure or Ctrl-C, and passes pytest's exit status on.
quick: $(TEST_STAMP)
	@$(KEEP_BYTECODE) HYPOTHESIS_PROFILE=quick bash -c 'TIMEFORMAT="quick loop: %1R s (limit $(QUICK_LIMIT) s)"; \
	time "$$@"' quick $(BIN)/python -m pytest -q -m "not slow" -n auto --durations=5 $(ARGS)

bench: $(TEST_STAMP)
	$(BIN)/python tests/benchmarks/bench_checker.py
	$(BIN)/python tests/benchmarks/bench_step.py
	$(BIN)/python tests/benchmarks/bench_store.py
	$(BIN)/python tests/benchmarks/bench_liveness.py
	$(BIN)/python tests/benchmarks/bench_search_core.py
	$(BIN)/python tests/benchmarks/bench_monolithic.py
	$(BIN)/python tests/benchmarks/bench_workers.py
	$(BIN)/python tests/benchmarks/bench_batch.py
	$(BIN)/python tests/benchmarks/bench_dispatch.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache
	find adapters kernel machines specs statewright tests -name __pycache__ -type d -prune -exec rm -rf {} +
