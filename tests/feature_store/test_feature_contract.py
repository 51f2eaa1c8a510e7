"""The exported feature-set contracts match the registry they are generated from."""

from __future__ import annotations

import json

import pytest

from feature_store.feature_contract import EXPORTED, contract_path, render
from feature_store.registry import get


@pytest.mark.parametrize("name", EXPORTED)
def test_contract_file_is_the_registry(name):
    path = contract_path(name)
    assert path.exists(), f"{path} missing: run python -m feature_store.feature_contract {name}"
    assert path.read_text() == render(get(name)), f"{path} is stale: regenerate it from the registry"
    data = json.loads(path.read_text())
    fs = get(name)
    assert [f["name"] for f in data["features"]] == list(fs.names) and data["version"] == fs.version
    assert all(f["params"]["kind"] for f in data["features"])  # what a featurizer dispatches on


def test_a_changed_definition_makes_the_file_stale():
    from dataclasses import replace

    fs = get("tick_v2")
    changed = replace(fs, features=(replace(fs.features[0], stream_tolerance=1e-6), *fs.features[1:]))
    assert render(changed) != render(fs) and json.loads(render(changed))["version"] != fs.version
