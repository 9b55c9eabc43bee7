# The two README commands: `make demo` and `make test`. Both set up everything
# they need on a fresh machine: the virtualenv, the Python packages, and (on first
# use) the Kafka and registry artifacts fetched from Maven Central.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test tools lint typecheck unit integration bench stack-start stack-stop clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "error: Python 3.11+ is required (found %s)" % sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/convotrail demo

test: $(STAMP) lint typecheck tools
	$(BIN)/convotrail stack fetch
	$(BIN)/pytest

# Tools the suite drives that no Python package provides (helm for the chart tests),
# built once into ~/.cache/convotrail/bin.
tools:
	bash deploy/tools/install-tools.sh

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest tests/unit

integration: $(STAMP)
	$(BIN)/pytest tests/integration tests/e2e

bench: $(STAMP)
	$(BIN)/python -m bench.producer_throughput
	$(BIN)/python -m bench.pipeline_throughput --profile
	$(BIN)/python -m bench.delivery_throughput
	$(BIN)/python -m bench.restore
	$(BIN)/python -m bench.latency
	$(BIN)/python -m bench.timer_lateness
	$(BIN)/python -m bench.bounce_parse

stack-start: $(STAMP)
	$(BIN)/convotrail stack start

stack-stop: $(STAMP)
	$(BIN)/convotrail stack stop

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
