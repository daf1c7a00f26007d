# Tidings: `make run` runs the whole system on the embedded broker; `make test` runs every check.
# Both are idempotent: the venv, the Python packages (pip's cache) and Kafka's jars
# (~/.cache/tidings) are fetched once and reused.

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install kafka chromium lint test test-fast run bench clean

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

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint kafka chromium
	$(BIN)/pytest -q

run: kafka
	$(BIN)/tidings run

bench: kafka
	$(BIN)/python bench/producer.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
