# Two commands for a newcomer: `make demo` and `make test`.
# Each creates ./.venv and installs the project into it when missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

.PHONY: install demo test lint bench
install: $(STAMP)

demo: $(STAMP)
	$(BIN)/agentcast demo

lint: $(STAMP)
	$(BIN)/ruff check actors runtime policies tests examples
	$(BIN)/ruff format --check actors runtime policies tests examples
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint
	$(BIN)/python -m pytest -q --durations=25

bench: $(STAMP)
	$(BIN)/agentcast bench resource --json
