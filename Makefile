# auditlake: `make demo` runs the whole job against the built-in simulator; `make test` runs every
# check and test; `make bench` measures speed and memory (see BENCHMARKS.md).

CARGO  ?= cargo
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
# DuckDB's Delta reader: the duckdb-ext-delta wheel bundles the extension (DuckDB cannot download
# one here) and pins duckdb 1.4.4, so it has a virtual environment of its own.
DELTA_VENV := .venv-duckdb-delta
BIN    := target/debug/auditlake
DEMO_LAKE ?= lake

.PHONY: all build demo test check unit services readback bench soak clean

all: build

build:
	$(CARGO) build --locked

# Real readers of the lake (DuckDB, pyarrow, polars, DataFusion, PySpark) and pytest, from PyPI, in a
# local virtual environment. PySpark runs the `java` on the PATH (or JAVA_HOME's): Java 17 or later.
$(VENV)/.installed: tests/readback/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/readback/requirements.txt
	touch $@

$(DELTA_VENV)/.installed: tests/readback/requirements-duckdb-delta.txt
	$(PYTHON) -m venv $(DELTA_VENV)
	$(DELTA_VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/readback/requirements-duckdb-delta.txt
	touch $@

demo: build $(VENV)/.installed
	$(BIN) demo --dest $(DEMO_LAKE)
	@echo
	$(PY) examples/query_lake.py $(DEMO_LAKE)

test: check unit services

# The whole workspace: auditlake and the simulator crate (crates/zendesk-sim).
check:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --locked --workspace --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --locked --workspace --no-deps --quiet

unit:
	$(CARGO) test --locked --workspace

# Tests against real services: a local S3-compatible server (moto) for the S3 tests, and real
# DuckDB, pyarrow, polars, DataFusion and Spark reading the lake back. tests/with-moto.sh stops the server even on failure.
# pytest runs the binary `cargo test` has just built (integration tests build it, with the tests'
# features): a plain `cargo build` here would compile tokio and everything above it once more,
# without `test-util`, for nothing.
services: $(VENV)/.installed $(DELTA_VENV)/.installed
	bash tests/with-moto.sh sh -c '$(CARGO) test --locked --test s3 -- --ignored && AUDITLAKE_BIN=$(BIN) DUCKDB_DELTA_PYTHON=$(DELTA_VENV)/bin/python $(PY) -m pytest -q tests/readback'

readback: services

# The model test (tests/model.rs) at length: many more random sequences of exports, faults,
# crashes at the k-th write, verify, repair, late records and conversions than `make test` runs,
# each checked against the lake's invariants; and an erasure and an expiry killed at every one of
# their writes (`make test` kills them at one write in six). Not part of `make test`.
# SOAK_SEQUENCES sets how many sequences.
SOAK_SEQUENCES ?= 200
soak:
	AUDITLAKE_MODEL_SEQUENCES=$(SOAK_SEQUENCES) AUDITLAKE_MODEL_BASE=1000 $(CARGO) test --locked --test model -- --nocapture
	AUDITLAKE_KILL_STEP=1 $(CARGO) test --locked --test erasure

bench:
	$(CARGO) build --locked --release
	bash tests/bench/run.sh target/release/auditlake

clean:
	rm -rf $(VENV) $(DELTA_VENV) $(DEMO_LAKE) bench-out
