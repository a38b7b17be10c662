# Two entry points: `make demo` and `make test`. Each creates the virtualenv on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

.PHONY: install demo test lint
install: $(STAMP)

demo: $(STAMP)
	$(BIN)/okr-sync demo

# The suite runs twice beside a throwaway PostgreSQL server: stores on SQLite, then on PostgreSQL.
test: $(STAMP)
	scripts/ensure-chromium.sh
	$(BIN)/ruff check .
	scripts/with-postgres.sh sh -c '$(BIN)/pytest && OKR_SYNC_TEST_STORE=postgresql $(BIN)/pytest'

lint: $(STAMP)
	$(BIN)/ruff check .
