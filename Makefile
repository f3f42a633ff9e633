# The project's jobs. `make run` and `make test` set everything up first on a fresh machine.
VENV   := .venv
BIN    := $(VENV)/bin
PYTHON ?= python3
STAMP  := $(VENV)/.installed

.PHONY: install system-deps run test faults fuzz lint bench soak clean

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

# The tests start and stop their own Kafka and ClickHouse endpoint on test ports. infra/tools.sh builds
# helm (the chart's tests) once into .cache/tools/bin.
test: install
	@infra/tools.sh
	$(BIN)/pytest

# The fault-injection suite (tests/faults/): real processes SIGKILLed, a broker or ClickHouse down under
# load; every scenario, the slow ones too (`make test` runs only the quick ones). Figures: test-artifacts/faults/.
faults: install
	$(BIN)/pytest -m faults tests/faults

# schemathesis against the OpenAPI with many more cases than `make test` (tests/fuzz/hooks.py).
fuzz: install
	BAROMETRE_FUZZ_EXAMPLES=$${BAROMETRE_FUZZ_EXAMPLES:-300} $(BIN)/pytest -s tests/integration/api/test_schemathesis.py \
		tests/integration/ingest/test_schemathesis.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Every bench but the hour-long soak (its own target) and bench/fresh_start.py (a whole stack, ~15 min).
bench: install
	@for b in bench/[!_]*.py; do { [ $$b = bench/soak.py ] || [ $$b = bench/fresh_start.py ]; } && continue; echo "== $$b"; $(BIN)/python $$b || exit 1; done

# An hour at 1,000 snapshots/s through ingest, Kafka, the scoring worker and ClickHouse (bench/soak.py).
soak: install
	$(BIN)/python bench/soak.py

clean:
	rm -rf $(VENV) .cache .mypy_cache .ruff_cache .pytest_cache .schemathesis .hypothesis test-artifacts
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
	@echo "state in ./data is kept; remove it yourself to start from nothing"
