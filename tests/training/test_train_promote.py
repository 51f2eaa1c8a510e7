"""Train -> register -> judge -> promote on arrays: a LightGBM candidate with its baselines, real MLflow and NATS."""

from __future__ import annotations

import json

import numpy as np
import vol_models as vm

from core.strategy import ModelSpec, Promotion
from flows.train import train_on_arrays
from training.promotion import apply_decision, judge, nats_publisher
from training.tracking import CHALLENGER, CHAMPION

SPEC = ModelSpec(
    kind="tick",
    name="gbm",
    timeframe="1s",
    horizons=list(vm.HORIZONS),
    lookback=vm.L,
    feature_set="test_v1",
    architecture="lightgbm",
)


def test_train_registers_a_challenger_that_promotion_judges(tracker, nats_server, tmp_path):
    X, y, days = vm.world(4000, seed=12, days=8)
    data = {"X": X, "y": y, "days": days, "names": vm.FEATURES, "data_versions": {"gold.features": 3, "gold.labels": 2}}
    out = train_on_arrays(SPEC, data, tracker, tmp_path / "exports", test_days=2, cal_days=2, fast=True)
    assert out["version"] == "1" and tracker.alias("gbm", CHALLENGER) == "1"
    assert out["metrics"]["model.log_score"] < out["metrics"]["climatology.log_score"]
    run = tracker.client().get_run(out["run_id"])
    assert run.data.params["data.gold.features"] == "3" and "model.log_score.h5" in run.data.metrics
    card = (tmp_path / "exports" / "gbm" / "v1" / "MODEL_CARD.md").read_text()
    assert "gold.labels` version 2" in card and "| 5 |" in card

    decision = judge(tracker, "gbm", "1", Promotion(bootstrap_draws=200), work_dir=tmp_path / "work")
    gates = {g.name: g.status for g in decision.gates}
    assert gates["log_score_vs_climatology"] == "pass", decision.reasons
    assert set(gates) >= {"ece", "log_score_vs_ewma_t", "sharpe", "latency"}
    outcome = apply_decision(
        tracker,
        "gbm",
        "1",
        decision,
        models_dir=tmp_path / "models",
        publish=nats_publisher(nats_server.url),
        promoted_at_ns=1,
    )
    assert outcome.promoted == decision.passed
    if decision.passed:
        assert tracker.alias("gbm", CHAMPION) == "1"
    else:
        assert tracker.alias("gbm", CHAMPION) is None
        assert json.loads(tracker.version_tags("gbm", "1")["promotion.reasons"]) == decision.reasons
    assert np.isfinite(decision.score)
