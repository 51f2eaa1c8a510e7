"""Promotion end to end on real MLflow (SQLite) and a real NATS KV bucket.

A worse model is refused with its reasons and nothing changes (alias, pointer); a better one gets
the ``champion`` alias and the KV pointer; rollback restores the previous champion.
"""

from __future__ import annotations

import asyncio
import json

import jsonschema
import nats
import numpy as np
import pytest
import vol_models as vm

from core.resources import contracts_dir
from core.strategy import Promotion
from feature_store.messages import models_bucket
from training.gates import PASS, Decision, GateResult, SharpeEvidence, evaluate_gates
from training.promotion import (
    PromotionError,
    apply_decision,
    canary_after_promotion,
    canary_check,
    nats_publisher,
    rollback,
)
from training.tracking import CHALLENGER, CHAMPION

NAME = "volm"
POINTER_SCHEMA = json.loads((contracts_dir() / "champion_pointer.schema.json").read_text())
CFG = Promotion(bootstrap_draws=300)


def read_pointer(url: str) -> tuple[dict, int]:
    async def go():
        nc = await nats.connect(url)
        kv = await models_bucket(nc.jetstream())
        entry = await kv.get(f"champion.{NAME}")
        await nc.close()
        return json.loads(entry.value), entry.revision

    return asyncio.run(go())


def register(tracker, tmp_path, scale: float) -> str:
    version = tracker.next_version(NAME)
    path = vm.export_graph(scale, NAME, version, tmp_path / f"export-{scale}")
    run_id = tracker.log_run(
        "tests", f"scale-{scale}", params={"scale": scale}, metrics={"x": 1.0}, artifacts={"model": path.parent}
    )
    assert tracker.register(run_id, NAME) == version
    return version


def judge(tracker, tmp_path, version: str, evidence, **extra):
    X, y, day = evidence
    from training.onnx_export import run_onnx

    cand = run_onnx(tracker.materialise(NAME, version, tmp_path / "judge"), X)
    champ_v = tracker.alias(NAME, CHAMPION)
    champ = run_onnx(tracker.materialise(NAME, champ_v, tmp_path / "judge"), X) if champ_v else None
    baselines = {"climatology": vm.climatology(y, len(y))}
    return evaluate_gates(cand, y, day, vm.EDGES, CFG, champion=champ, baselines=baselines, **extra)


@pytest.fixture
def evidence():
    return vm.world(3000, seed=5, days=12)


def test_gates_promote_refuse_and_roll_back(tracker, nats_server, tmp_path, evidence):
    publish = nats_publisher(nats_server.url)
    models = tmp_path / "models"

    v1 = register(tracker, tmp_path, scale=1.25)  # beats climatology, not the truth
    d1 = judge(tracker, tmp_path, v1, evidence, latency_p99_ms=0.2)
    assert d1.passed, d1.reasons
    assert {g.name: g.status for g in d1.gates}["sharpe"] == "skipped"
    out = apply_decision(tracker, NAME, v1, d1, models_dir=models, publish=publish, promoted_at_ns=1)
    assert out.promoted and tracker.alias(NAME, CHAMPION) == v1
    pointer, rev1 = read_pointer(nats_server.url)
    jsonschema.validate(pointer, POINTER_SCHEMA)
    assert pointer["model_version"] == v1 and pointer["onnx_uri"].startswith("file://")

    v2 = register(tracker, tmp_path, scale=2.0)  # worse than the champion
    assert tracker.alias(NAME, CHALLENGER) == v2
    d2 = judge(tracker, tmp_path, v2, evidence, latency_p99_ms=0.2)
    assert not d2.passed
    assert any(r.startswith("log_score_vs_champion") for r in d2.reasons), d2.reasons
    out = apply_decision(tracker, NAME, v2, d2, models_dir=models, publish=publish, promoted_at_ns=2)
    assert not out.promoted and out.reasons == tuple(d2.reasons)
    assert tracker.alias(NAME, CHAMPION) == v1
    assert read_pointer(nats_server.url) == (pointer, rev1)  # the KV entry did not move
    tags = tracker.version_tags(NAME, v2)
    assert tags["promotion.status"] == "refused" and "log_score_vs_champion" in tags["promotion.reasons"]

    v3 = register(tracker, tmp_path, scale=1.0)  # the truth: better than the champion
    d3 = judge(tracker, tmp_path, v3, evidence, latency_p99_ms=0.2)
    assert d3.passed, d3.reasons
    apply_decision(tracker, NAME, v3, d3, models_dir=models, publish=publish, promoted_at_ns=3)
    assert tracker.alias(NAME, CHAMPION) == v3
    assert read_pointer(nats_server.url)[0]["model_version"] == v3
    assert tracker.history(NAME) == [v1, v3]

    back = rollback(tracker, NAME, models_dir=models, publish=publish, promoted_at_ns=4)
    assert back.version == v1 and tracker.alias(NAME, CHAMPION) == v1
    assert read_pointer(nats_server.url)[0]["model_version"] == v1
    assert tracker.version_tags(NAME, v3)["promotion.status"] == "rolled_back"
    with pytest.raises(PromotionError, match="no previous champion"):
        rollback(tracker, NAME, models_dir=models, publish=publish, promoted_at_ns=5)


def test_failed_pointer_write_changes_nothing(tracker, tmp_path, evidence):
    v1 = register(tracker, tmp_path, scale=1.0)
    d1 = judge(tracker, tmp_path, v1, evidence)

    def down(pointer):
        raise ConnectionError("nats is down")

    with pytest.raises(PromotionError, match="pointer not written"):
        apply_decision(tracker, NAME, v1, d1, models_dir=tmp_path / "m", publish=down, promoted_at_ns=1)
    assert tracker.alias(NAME, CHAMPION) is None


def test_each_gate_fails_on_its_own(evidence):
    X, y, day = evidence
    truth = vm.reference(1.0)(X)
    clim = vm.climatology(y, len(y))
    base = evaluate_gates(truth, y, day, vm.EDGES, CFG, baselines={"climatology": clim})
    assert base.passed
    slow = evaluate_gates(truth, y, day, vm.EDGES, CFG, latency_p99_ms=5.0)
    assert [r.split(":")[0] for r in slow.reasons] == ["latency"]
    poor = evaluate_gates(truth, y, day, vm.EDGES, CFG, sharpe=SharpeEvidence(0.5, -0.2, 1.2, 0.3))
    assert [r.split(":")[0] for r in poor.reasons] == ["sharpe"]
    shifted = np.roll(truth, 3, axis=2)  # +3 bp bias: prob_up badly calibrated
    assert "ece" in [r.split(":")[0] for r in evaluate_gates(shifted, y, day, vm.EDGES, CFG).reasons]
    one_day = evaluate_gates(truth, y, np.zeros(len(y)), vm.EDGES, CFG, baselines={"climatology": clim})
    assert not one_day.passed  # no CI from a single day
    ranked = sorted([base, slow], key=lambda d: d.score, reverse=True)
    assert ranked[0] is base


def test_canary_rolls_back_a_worse_challenger(evidence):
    X, y, _ = evidence
    truth, wide = vm.reference(1.0)(X), vm.reference(2.5)(X)
    cfg = Promotion().canary
    assert canary_check(truth, wide, y, vm.EDGES, cfg).rollback
    assert not canary_check(wide, truth, y, vm.EDGES, cfg).rollback
    assert not canary_check(truth[:10], wide[:10], y[:10], vm.EDGES, cfg).rollback  # too few windows to decide


def test_canary_on_live_windows_rolls_a_bad_champion_back(tracker, tmp_path):
    published = []
    forced = Decision((GateResult("forced", PASS, None, None, "test"),), 0.0)
    kw = {"models_dir": tmp_path / "models", "publish": published.append}
    good, bad = register(tracker, tmp_path, scale=1.0), register(tracker, tmp_path, scale=2.5)
    apply_decision(tracker, NAME, good, forced, promoted_at_ns=1, **kw)
    apply_decision(tracker, NAME, bad, forced, promoted_at_ns=2, **kw)  # e.g. promoted on stale evidence
    X, y, _ = vm.world(800, seed=21)
    result = canary_after_promotion(tracker, NAME, X, y, Promotion().canary, promoted_at_ns=3, **kw)
    assert result.rollback and result.log_score_challenger > result.log_score_champion
    assert tracker.alias(NAME, CHAMPION) == good and published[-1]["model_version"] == good
