# MPS: `make demo` runs the whole pipeline on the embedded default; `make test` runs every test.
# Both set themselves up on a fresh machine: uv, the pinned Python environment, the Rust scorer.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

PYTHON ?= python3
UV_VERSION := 0.13.8
VENV := .venv
PY := $(VENV)/bin/python
UV := $(PYTHON) -m uv
# Build output and package caches live outside the repository, so re-runs are quick.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/mps/cargo-target
export UV_CACHE_DIR ?= $(HOME)/.cache/uv
export PYTHONUNBUFFERED := 1
# The scorer loads the libonnxruntime inside the installed onnxruntime wheel (one ORT for both sides).
ORT_DYLIB_PATH = $(abspath $(firstword $(wildcard $(VENV)/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.1*)))
SCORER := $(CARGO_TARGET_DIR)/release/mps-scorer
PYTEST_ARGS ?=
DEMO_ARGS ?=

.PHONY: help setup env rust check test test-py test-rust demo bench bench-scorer golden clean-state

help:
	@echo "make demo   - run the whole pipeline on the simulator and print a report"
	@echo "make test   - set up, build the Rust scorer, run the quality gates, cargo test and pytest"
	@echo "make check  - the quality gates alone: ruff, mypy, import-linter, clippy, rustfmt"
	@echo "make bench  - run the benchmark scripts (figures, not tests)"
	@echo "make golden - regenerate contracts/ fixture models and golden vectors"

setup: env rust

$(VENV)/.synced: pyproject.toml uv.lock
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet "uv==$(UV_VERSION)"
	$(UV) sync --frozen --python "$$($(PYTHON) -c 'import sys; print(sys.executable)')"
	@touch $@

env: $(VENV)/.synced

rust: env
	@if [ -f serving-rs/Cargo.toml ]; then \
	  cargo build --release --locked --manifest-path serving-rs/Cargo.toml; \
	fi

# Quality gates: lint and format, types (strict on core/), the import layers, clippy and rustfmt.
check: env
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy
	@if [ -f serving-rs/Cargo.toml ]; then \
	  cargo fmt --manifest-path serving-rs/Cargo.toml --all --check; \
	  ORT_DYLIB_PATH="$(ORT_DYLIB_PATH)" cargo clippy --locked --release --all-targets --manifest-path serving-rs/Cargo.toml -- -D warnings; \
	fi

test: setup
	@$(MAKE) --no-print-directory check
	@$(MAKE) --no-print-directory test-rust
	@$(MAKE) --no-print-directory test-py

test-py: env
	ORT_DYLIB_PATH="$(ORT_DYLIB_PATH)" MPS_SCORER_BIN="$(SCORER)" $(VENV)/bin/pytest $(PYTEST_ARGS)

test-rust: env
	@if [ -f serving-rs/Cargo.toml ]; then \
	  ORT_DYLIB_PATH="$(ORT_DYLIB_PATH)" cargo test --release --locked --manifest-path serving-rs/Cargo.toml; \
	fi

demo: setup
	ORT_DYLIB_PATH="$(ORT_DYLIB_PATH)" MPS_SCORER_BIN="$(SCORER)" $(PY) -m mps.demo $(DEMO_ARGS)

bench: setup
	$(PY) benchmarks/ingest.py
	$(PY) benchmarks/reconcile.py
	@$(MAKE) --no-print-directory bench-scorer

bench-scorer: setup
	cd serving-rs && ORT_DYLIB_PATH="$(ORT_DYLIB_PATH)" cargo bench --locked --bench scorer
	ORT_DYLIB_PATH="$(ORT_DYLIB_PATH)" $(PY) benchmarks/scorer_e2e.py

golden: env  ## regenerate the fixture models and golden vectors (deterministic)
	$(PY) -m contracts.regen_golden

clean-state:
	rm -rf .mps
