"""Shared fixtures: the real vendor data folder, a temporary lake, a fixed clock."""

from __future__ import annotations

from datetime import datetime, timezone
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
    fixed = datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)
    return lambda: fixed
