# The README names these targets. `make demo` and `make test` work on a fresh clone with Python 3.11.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
SEGMENTS_HOME ?= $(CURDIR)/data
export SEGMENTS_HOME

.PHONY: install demo test lint format ui clean

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "Python 3.11 is needed (set PYTHON=/path/to/python3.11)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel 2> $(VENV)/pip-bootstrap.log || { cat $(VENV)/pip-bootstrap.log; exit 1; }

# Re-install only when the dependency list changed.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	@echo "installing the stack into $(VENV) (first time: a minute or two)"
	@$(BIN)/pip install --quiet -e '.[dev]' > $(VENV)/pip-install.log 2>&1 || { tail -50 $(VENV)/pip-install.log; exit 1; }
	@touch $@

# A DuckDB 1.x beside the stack, only to prove that BI tools bundling an older DuckDB can read
# the published file (tests/test_publish.py).
$(VENV)/duckdb1/.installed: | $(BIN)/python
	@$(BIN)/pip install --quiet --target $(VENV)/duckdb1 'duckdb>=1.4,<2' > $(VENV)/pip-duckdb1.log 2>&1 || { tail -20 $(VENV)/pip-duckdb1.log; exit 1; }
	@touch $@

install: $(VENV)/.installed $(VENV)/duckdb1/.installed

demo: install
	$(BIN)/segments demo --home $(SEGMENTS_HOME)

test: install lint
	$(BIN)/pytest -q

lint: install
	$(BIN)/ruff check dagster_project tests

format: install
	$(BIN)/ruff format dagster_project tests
	$(BIN)/ruff check --fix dagster_project tests

# The Dagster UI on the CLI's instance, so it shows the runs of `segments run`.
ui: install
	mkdir -p $(SEGMENTS_HOME)/dagster
	DAGSTER_HOME=$(SEGMENTS_HOME)/dagster $(BIN)/dagster dev -w workspace.yaml

clean:
	rm -rf $(SEGMENTS_HOME) dbt_project/target dbt_project/logs .pytest_cache
