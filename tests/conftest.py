"""Shared fixtures: the real vendor data folder, a temporary lake, a fixed clock, a Prefect test server.

``prefect_harness`` is session-scoped (the server takes seconds to start) and shared by every test that
takes it (flows, deployments, the demo). Its settings go into the environment (for the server
subprocess and for Prefect modules imported later) and into Prefect's settings context.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

from lakehouse.storage import Lake

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real vendor data in ../shared/data; tests that need it skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real vendor data not found at {SHARED_DATA} (a fresh clone has no ../shared)")
    return SHARED_DATA


@pytest.fixture
def lake(tmp_path) -> Lake:
    return Lake(str(tmp_path / "lake"))


@pytest.fixture
def clock():
    """A fixed clock: ingest and known_at times are deterministic in tests."""
    fixed = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    return lambda: fixed


@pytest.fixture(scope="session")
def prefect_harness():
    """Run flows against a throwaway local Prefect server for the whole session."""
    home = tempfile.mkdtemp(prefix="mps-prefect-")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PREFECT_HOME", home)
        mp.setenv("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
        from prefect.settings import PREFECT_HOME, PREFECT_SERVER_ANALYTICS_ENABLED, temporary_settings
        from prefect.testing.utilities import prefect_test_harness

        with temporary_settings({PREFECT_HOME: home, PREFECT_SERVER_ANALYTICS_ENABLED: False}):
            with prefect_test_harness(server_startup_timeout=300):
                yield
                # The harness logs its shutdown after pytest has closed the captured streams.
                logging.getLogger("prefect").setLevel(logging.WARNING)
    shutil.rmtree(home, ignore_errors=True)
