# Two commands from a fresh clone: `make demo` and `make test`. Both create .venv when missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast lint typecheck pytest browser bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Re-install when the dependencies change.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/modelloop demo fraud

lint: $(STAMP)
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/ruff check src tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

# The web UI's browser tests drive Debian's chromium through Playwright (no browser download).
browser:
	@command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium)

# Every core, a test file per worker (module fixtures such as the UI's server are set up once).
pytest: $(STAMP) browser
	$(BIN)/pytest -q -n auto --dist loadfile --durations=15

test: lint typecheck pytest

# The inner loop: the suite on every core, without the browser and slow tests (make test is CI's).
test-fast: $(STAMP)
	$(BIN)/pytest -q -n auto -m "not browser and not slow"

bench: $(STAMP)
	$(BIN)/python benchmarks/tracking.py
	$(BIN)/python benchmarks/mlflow_compat.py
	$(BIN)/python benchmarks/serving.py
	$(BIN)/python benchmarks/pipelines.py
	$(BIN)/python benchmarks/drift.py
	$(BIN)/python benchmarks/ui.py

clean:
	rm -rf $(VENV) .modelloop .pytest_cache .mypy_cache .ruff_cache
