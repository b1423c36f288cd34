# fcfd-viz: `make app` and `make test` work on a fresh clone (they create .venv on first use).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
HOST   ?= 127.0.0.1
PORT   ?= 8501
PYTEST_ARGS ?=
# pytest-xdist workers for `make test` (the suite's subprocesses leave a core idle half the
# time; two workers fill it); PYTEST_WORKERS=0 runs it in one process
PYTEST_WORKERS ?= 2

.PHONY: app test lint format install clean benchmarks chromium

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
	$(BIN)/python -m mypy

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: lint chromium
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

# Debian's Chromium for the real-browser tests (tests/app/test_browser.py, as .ci/run does):
# installed when missing and this is root with apt-get; otherwise say that they will be skipped
CHROMIUM := /usr/bin/chromium
chromium:
	@if [ ! -x $(CHROMIUM) ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "make: installing Debian's chromium for the browser tests"; \
	    (apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium >/dev/null) \
	      || echo "make: WARNING: could not install chromium: the browser tests will be skipped"; \
	  else \
	    echo "make: WARNING: $(CHROMIUM) not found: the browser tests (tests/app/test_browser.py)" \
	      "will be skipped; install it with: sudo apt-get install chromium"; \
	  fi; \
	fi

benchmarks: $(STAMP)
	$(BIN)/python benchmarks/step_time.py
	$(BIN)/python benchmarks/probe_speed.py
	$(BIN)/python benchmarks/accuracy.py
	$(BIN)/python benchmarks/gap.py
	$(BIN)/python benchmarks/app_timing.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache build dist *.egg-info
