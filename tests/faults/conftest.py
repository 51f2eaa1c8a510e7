"""Fixtures for the fault-injection suite: the lakehouse tests' moto S3 endpoint, reused as is."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_path = Path(__file__).resolve().parents[1] / "lakehouse" / "conftest.py"
_spec = importlib.util.spec_from_file_location("mps_tests_lakehouse_fixtures", _path)
_fixtures = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = _fixtures  # dataclasses look their module up there
_spec.loader.exec_module(_fixtures)

s3_endpoint = _fixtures.s3_endpoint  # moto's ThreadedMotoServer on a free port, one per session
