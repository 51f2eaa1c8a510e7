"""A Prefect test server for flow tests: temporary PREFECT_HOME, analytics off, SQLite database.

``prefect_harness`` is session-scoped (the server takes seconds to start); any flow test can take
it. The settings go both into the environment (for the server subprocess and for Prefect modules
imported later) and into Prefect's settings context (for modules already imported).
"""

from __future__ import annotations

import logging
import shutil
import tempfile

import pytest


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
            with prefect_test_harness(server_startup_timeout=120):
                yield
                # The harness logs its shutdown after pytest has closed the captured streams.
                logging.getLogger("prefect").setLevel(logging.WARNING)
    shutil.rmtree(home, ignore_errors=True)
