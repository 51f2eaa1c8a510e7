"""Feature sets as cross-language contracts: ``contracts/feature_sets/<name>.json``, generated from the registry.

A featurizer written in another language (the Rust one planned beside the scorer) reads a set's
feature order, kinds, windows, parameters and stream tolerances from this file instead of copying
them. The file is generated here; ``tests/feature_store/test_feature_contract.py`` fails when it
no longer matches the registry. Regenerate with::

    .venv/bin/python -m feature_store.feature_contract tick_v2
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from core.resources import contracts_dir
from feature_store.registry import FeatureSet, get

EXPORTED = ("tick_v2",)  # the sets a non-Python featurizer computes


def _constants(fs: FeatureSet) -> dict[str, Any]:
    """Values the formulas use that are not per-feature parameters (the calendar sessions come from it)."""
    if fs.name != "tick_v2":
        return {}
    from feature_store.tick.batch import VAR_SNAP
    from feature_store.tick.events import DEFAULT_CALENDAR

    return {"var_snap": VAR_SNAP, "default_calendar": DEFAULT_CALENDAR, "ts_unit": "ns", "second_closes": "(s-1, s]"}


def contract(fs: FeatureSet) -> dict[str, Any]:
    """The JSON contract of ``fs``: its version hash, timeframe and each feature in model input order."""
    features = []
    for i, f in enumerate(fs.features):
        spec = f.spec()
        spec["params"] = f.param  # an object for readers; the version hashes the same pairs
        features.append({"index": i, **spec, "description": f.description})
    return {
        "name": fs.name,
        "tf": fs.tf,
        "version": fs.version,
        "description": fs.description,
        "constants": _constants(fs),
        "features": features,
    }


def render(fs: FeatureSet) -> str:
    """The file's text: sorted keys, two-space indent, a final newline (stable diffs)."""
    return json.dumps(contract(fs), indent=2, sort_keys=True, allow_nan=False) + "\n"


def contract_path(name: str) -> Path:
    """Where the contract of feature set ``name`` lives."""
    return contracts_dir() / "feature_sets" / f"{name}.json"


def write(name: str) -> Path:
    """(Re)generate the contract file of ``name`` from the registry."""
    path = contract_path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(get(name)))
    return path


if __name__ == "__main__":
    for arg in sys.argv[1:] or EXPORTED:
        print(write(arg))
