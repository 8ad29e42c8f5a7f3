# The two commands: `make run` (the course, headless, into reports/) and
# `make test` (the suite, against real brokers). Both set up .venv themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint lab brokers bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/queuelab run --out reports

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Jupyter refuses to run as root without --allow-root (common in containers).
lab: $(STAMP)
	$(BIN)/jupyter lab notebooks $(if $(filter 0,$(shell id -u)),--allow-root)

brokers: $(STAMP)
	$(BIN)/queuelab brokers

bench: $(STAMP)
	$(BIN)/python -m benchmarks

clean:
	rm -rf reports data/results .pytest_cache .mypy_cache .ruff_cache
