# auditlake: `make demo` runs the whole job against the built-in simulator; `make test` runs every
# check and test; `make bench` measures speed and memory (see BENCHMARKS.md).

CARGO  ?= cargo
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
BIN    := target/debug/auditlake
DEMO_LAKE ?= lake

.PHONY: all build demo test check unit readback bench clean

all: build

build:
	$(CARGO) build --locked

# Real readers of the lake (DuckDB, pyarrow) and pytest, from PyPI, in a local virtual environment.
$(VENV)/.installed: tests/readback/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/readback/requirements.txt
	touch $@

demo: build $(VENV)/.installed
	$(BIN) demo --dest $(DEMO_LAKE)
	@echo
	$(PY) examples/query_lake.py $(DEMO_LAKE)

test: check unit readback

check:
	$(CARGO) fmt --check
	$(CARGO) clippy --locked --all-targets -- -D warnings

unit:
	$(CARGO) test --locked

readback: build $(VENV)/.installed
	AUDITLAKE_BIN=$(BIN) $(PY) -m pytest -q tests/readback

bench:
	$(CARGO) build --locked --release
	bash tests/bench/run.sh target/release/auditlake

clean:
	rm -rf $(VENV) $(DEMO_LAKE) bench-out
