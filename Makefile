# treechat: `make run` starts the TUI, `make test` runs lint, types and tests.
# The interpreter that creates .venv: the newest of python3.13, 3.12, 3.11 on PATH, else
# python3 if it is 3.11 or newer (scripts/find-python); `make PYTHON=/path/to/python run`
# names one (still checked).
export PYTHON
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint typecheck imports pytest screenshots bench clean

$(BIN)/python:
	@python=$$($(SHELL) scripts/find-python) && echo "creating $(VENV) with $$python" && \
		$$python -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.dev-installed: $(VENV)/.installed
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

run: $(VENV)/.installed
	$(BIN)/treechat

test: lint typecheck imports pytest

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.dev-installed
	$(BIN)/mypy

imports: $(VENV)/.dev-installed
	$(BIN)/lint-imports

pytest: $(VENV)/.dev-installed
	$(BIN)/pytest -q

screenshots: $(VENV)/.dev-installed
	$(BIN)/python screenshots/export.py

bench: $(VENV)/.installed
	for b in benchmarks/bench_*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
