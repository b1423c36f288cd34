# fcfd-viz: `make app` and `make test` work on a fresh clone (they create .venv on first use).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
HOST   ?= 127.0.0.1
PORT   ?= 8501
PYTEST_ARGS ?=

.PHONY: app test lint format install clean benchmarks

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# reinstall whenever pyproject.toml changed since the last install
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

app: $(STAMP)
	$(BIN)/streamlit run app/main.py --server.address $(HOST) --server.port $(PORT) \
		--server.headless true --browser.gatherUsageStats false

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

benchmarks: $(STAMP)
	$(BIN)/python benchmarks/step_time.py
	$(BIN)/python benchmarks/probe_speed.py
	$(BIN)/python benchmarks/accuracy.py
	$(BIN)/python benchmarks/gap.py
	$(BIN)/python benchmarks/app_timing.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info
