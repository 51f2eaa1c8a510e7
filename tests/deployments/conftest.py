"""Reuse the flow tests' Prefect test server fixture (``tests/flows/conftest.py``) for deployment tests."""

from __future__ import annotations

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location("mps_flow_fixtures", Path(__file__).parents[1] / "flows" / "conftest.py")
_fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_fixtures)
prefect_harness = _fixtures.prefect_harness
