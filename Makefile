# Flowbot. `make run` starts the bot, `make test` runs every check.
# SecantusDB ships wheels for CPython 3.10-3.13 only: pick such an interpreter.
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3.10 python3; do \
  if command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(not ((3,10) <= sys.version_info[:2] <= (3,13)))' 2>/dev/null; then echo $$p; break; fi; done)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run sandbox test test-fast lint typecheck contracts pytest bench clean

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "Flowbot needs CPython 3.10-3.13 (SecantusDB wheels); set PYTHON=/path/to/python3.x"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/python -m bot

# A local Slack in the browser at http://localhost:3001 (SANDBOX_PORT), its data in memory.
sandbox: $(STAMP)
	$(BIN)/python -m emulator --with-bot

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

contracts: $(STAMP)
	$(BIN)/lint-imports

pytest: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider -n 2 --dist worksteal; rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; exit 0; fi; exit $$rc

test: lint typecheck contracts pytest

# The unit layer: engine, step, approval and permission tests on in-memory stores, and the
# storage contract tests (in memory and on the embedded MongoDB). Under 20 s, no Slack.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/unit tests/contract; rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; exit 0; fi; exit $$rc

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache
