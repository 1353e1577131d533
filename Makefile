# Intake Gateway: `make run` starts the daemon, `make test` runs every test, `make check` lints.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test check bench fuzz clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/intake-gateway run

test: $(STAMP)
	$(BIN)/pytest

check: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

# A long fuzzing budget (make test runs a short one of the same tests).
fuzz: $(STAMP)
	FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-5000} $(BIN)/pytest -q tests/ops/test_fuzz.py

bench: $(STAMP)
	$(BIN)/python -m bench.smtp_throughput

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
