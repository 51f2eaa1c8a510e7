"""The train deployment retrains on the drift event; prefect.yaml declares the same training-side deployments."""

from __future__ import annotations

from pathlib import Path

import yaml

from core.strategy import load_strategy
from deployments.serve import deployments, training_deployments
from training.drift import DRIFT_EVENT

ROOT = Path(__file__).resolve().parents[2]


def test_train_deployment_is_triggered_by_drift_and_matches_prefect_yaml():
    strategy = load_strategy()
    built = {d.entrypoint: d for d in training_deployments(strategy)}
    assert set(built) == {
        "flows/train.py:train",
        "flows/promote.py:promote",
        "flows/drift.py:drift_check",
        "flows/canary.py:canary",
        "flows/pipeline.py:pipeline",
    }
    train = built["flows/train.py:train"]
    (trigger,) = train.triggers
    assert trigger.expect == {DRIFT_EVENT}
    assert trigger.parameters["model_name"] == "{{ event.resource['mps.model'] }}"
    assert train.schedules[0].schedule.cron == strategy.schedules.train
    declared = {
        d["entrypoint"]: d for d in yaml.safe_load((ROOT / "deployments/prefect.yaml").read_text())["deployments"]
    }
    for entrypoint, dep in built.items():
        d = declared[entrypoint]
        assert d["name"] == dep.name and d["parameters"] == dep.parameters
        assert sorted(d["tags"]) == sorted(dep.tags)
    (yaml_trigger,) = declared["flows/train.py:train"]["triggers"]
    assert yaml_trigger["expect"] == [DRIFT_EVENT] and yaml_trigger["parameters"] == trigger.parameters
    served = {d.entrypoint for d in deployments(strategy, training=True)}
    assert set(built) <= served
