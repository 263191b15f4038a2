# mmlearn: `make run` runs every notebook headless, `make test` runs the tests.
# Each target creates .venv and installs the package on first use, and again only when
# pyproject.toml changes (stamp files below), so running a target twice does not reinstall.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PROFILE ?= fast
JOBS ?= 2
# Tests run in TEST_JOBS processes (pytest-xdist; idle workers steal queued tests)
TEST_JOBS ?= 2
export TF_CPP_MIN_LOG_LEVEL ?= 3

.PHONY: run test lab data bench lint clean help
.DEFAULT_GOAL := help

help:
	@echo "make run    run every notebook headless (PROFILE=fast|full, JOBS=2 at a time), summary in runs/"
	@echo "make test   unit tests, every notebook through papermill and nbval, lint, browser test (TEST_JOBS=2 at a time)"
	@echo "make lab    open JupyterLab on notebooks/"
	@echo "make data   rebuild the spoken-digit data in data/ (needs espeak-ng)"

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null || { \
	  echo "mmlearn needs Python 3.10 or newer as '$(PYTHON)'; found: $$($(PYTHON) --version 2>&1)."; \
	  echo "Install a newer Python, or run: make $(MAKECMDGOALS) PYTHON=/path/to/python3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# The runtime install; dev and browser extras on top for the tests.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	@touch $@

$(VENV)/.installed-dev: pyproject.toml $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e '.[dev,browser]'
	@touch $@

run: $(VENV)/.installed
	$(BIN)/python -m mmlearn_helpers.run --profile $(PROFILE) --jobs $(JOBS)

test: $(VENV)/.installed-dev
	$(BIN)/ruff check mmlearn_helpers tests notebooks data
	$(BIN)/python -m pytest -ra -n $(TEST_JOBS) --dist worksteal tests
	$(BIN)/python -m pytest -ra --nbval-lax -p no:cacheprovider notebooks/00_setup_and_data.ipynb

lab: $(VENV)/.installed
	$(BIN)/jupyter lab notebooks

data: $(VENV)/.installed
	$(BIN)/python data/build_spoken_digits.py

bench: $(VENV)/.installed
	$(BIN)/python -m mmlearn_helpers.bench $(BENCH_ARGS)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check mmlearn_helpers tests notebooks data

clean:
	rm -rf runs .pytest_cache
