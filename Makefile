# The project's jobs. `make run` and `make test` set everything up first on a fresh machine.
VENV   := .venv
BIN    := $(VENV)/bin
PYTHON ?= python3
STAMP  := $(VENV)/.installed

.PHONY: install system-deps run test lint bench clean

install: $(STAMP) system-deps
	@$(BIN)/python -m infra.kafka fetch

# Reinstall when the dependencies change; constraints.txt pins every version.
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	@touch $@

system-deps:
	@infra/system-deps.sh $(if $(filter test,$(MAKECMDGOALS)),test,run)

run: install
	$(BIN)/barometre run

# The tests start and stop their own Kafka and ClickHouse endpoint on test ports.
test: install
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: install
	@for b in bench/[!_]*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .cache .mypy_cache .ruff_cache .pytest_cache test-artifacts
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
	@echo "state in ./data is kept; remove it yourself to start from nothing"
