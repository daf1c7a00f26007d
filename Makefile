# Tidings: `make run` runs the whole system on the embedded broker; `make test` runs every check.
# Both are idempotent: the venv, the Python packages (pip's cache) and Kafka's jars
# (~/.cache/tidings) are fetched once and reused.

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install kafka chromium postgres lint test test-fast run bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

kafka: install
	$(BIN)/python -c "from admin.broker import kafka_libs; print('kafka jars:', kafka_libs())"

# Debian's chromium for the dashboard's browser tests (Playwright cannot download its own).
chromium:
	command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium)

# Debian's PostgreSQL server binaries; the tests run private clusters from them on free ports
# (never the system service).
postgres:
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || (apt-get update && apt-get install -y postgresql)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint kafka chromium postgres
	$(BIN)/pytest -q

run: kafka
	$(BIN)/tidings run

bench: kafka
	$(BIN)/python bench/producer.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
