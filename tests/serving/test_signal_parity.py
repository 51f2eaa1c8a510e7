"""The Python reference reproduces the golden signals the Rust scorer is held to (contracts/golden)."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import jsonschema
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scorer_helpers import CONTRACTS

from backtest.reference_scorer import ReferenceScorer
from backtest.signal import NUMERIC_FIELDS, compute_signal, quantile, summarize
from backtest.sizing import RiskState, SizingConfig, guard_for, kelly_exposure, position_size
from contracts.kelly_oracle import scipy_kelly
from core.errors import ConfigError
from training.onnx_export import read_metadata, sha256_file

GOLDEN = json.loads((CONTRACTS / "golden" / "signals.json").read_text())
CASES = GOLDEN["cases"]


@pytest.fixture(scope="module")
def reference() -> ReferenceScorer:
    return ReferenceScorer(CONTRACTS / GOLDEN["model"])


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_reference_reproduces_golden_signal(case, reference):
    meta = reference.meta
    if "window" in case:
        probs = reference.predict(np.asarray(case["window"], dtype=np.float32)[None])[0]
    else:
        probs = np.asarray(case["probs"], dtype=np.float32)
    got = compute_signal(
        probs,
        meta,
        SizingConfig.from_dict(case["sizing"]),
        **case["update"],
        last_features=case["last_features"],
        warm=case["warm"],
        risk=RiskState(**case["risk"]),
        now_ns=case["now_ns"],
    )
    expected = case["expected"]
    for field in NUMERIC_FIELDS:
        assert got[field] == pytest.approx(expected[field], abs=1e-12), field
    assert got["vol_scale"] == pytest.approx(expected["vol_scale"], abs=1e-12)
    for field in ("guard", "capped", "seq", "ts", "model_version", "horizon"):
        assert got[field] == expected[field], field


def test_golden_signals_follow_the_signal_schema():
    schema = json.loads((CONTRACTS / "signal.schema.json").read_text())
    for case in CASES:
        jsonschema.validate({**case["expected"], "published_at": 0}, schema)


def test_fixture_models_carry_their_golden_vectors():
    for version in ("v1", "v2"):
        path = CONTRACTS / "models" / "tick_tiny" / version / "tick_tiny.onnx"
        meta = read_metadata(path)
        golden_path = path.with_name(meta.golden_file)
        assert sha256_file(golden_path) == meta.golden_sha256
        golden = json.loads(golden_path.read_text())
        probs = ReferenceScorer(path).predict(np.asarray(golden["inputs"], dtype=np.float32))
        np.testing.assert_allclose(probs, np.asarray(golden["probs"]), atol=golden["tolerance"])
        np.testing.assert_allclose(probs.sum(axis=-1), 1.0, atol=1e-5)
        assert meta.model_version == version[1:]
        assert meta.horizons == (1, 5, 10, 30, 60, 120, 300, 600) and meta.n_buckets == 101


def test_sizing_config_rejects_typos(tmp_path):
    raw = json.loads((CONTRACTS / "sizing.json").read_text())
    with pytest.raises(ConfigError, match="kelly_alfa"):
        SizingConfig.from_dict({**raw, "kelly_alfa": 0.3})
    bad = tmp_path / "sizing.json"
    bad.write_text(json.dumps({k: v for k, v in raw.items() if k != "nav"}))
    with pytest.raises(ConfigError, match="nav"):
        SizingConfig.load(bad)


def test_quantiles_interpolate_within_buckets():
    edges = np.array([-2.0, -1.0, 0.0, 1.0, 2.0])
    p = np.array([0.1, 0.4, 0.4, 0.1])
    assert quantile(p, edges, 0.5) == pytest.approx(0.0)
    assert quantile(p, edges, 0.05) == pytest.approx(-1.5)
    s = summarize(p, edges * 1e4)
    assert s["prob_up"] == pytest.approx(0.5) and s["mean"] == pytest.approx(0.0, abs=1e-15)
    assert s["avg_gain"] == pytest.approx(s["avg_loss"])


probs_strategy = st.lists(st.floats(0.0, 1.0), min_size=101, max_size=101).filter(lambda v: sum(v) > 1e-3)
MIDS = np.expm1(0.5 * (np.linspace(-50, 50, 102)[:-1] + np.linspace(-50, 50, 102)[1:]) * 1e-4)


@settings(max_examples=150, deadline=None)
@given(p=probs_strategy, cost_bps=st.sampled_from([0.0, 0.1, 1.5]), kelly_max=st.sampled_from([100.0, 1e4]))
def test_kelly_equals_scipy_optimum(p, cost_bps, kelly_max):
    probs = np.asarray(p) / sum(p)
    ours = kelly_exposure(probs, MIDS, cost_bps * 1e-4, kelly_max)
    oracle = scipy_kelly(probs, MIDS, cost_bps * 1e-4, kelly_max)
    assert ours == pytest.approx(oracle, rel=1e-9, abs=1e-9)
    # and it maximises expected log growth: no grid point beats it
    c = cost_bps * 1e-4

    def growth(f: float) -> float:
        return float(probs @ np.log1p(f * (MIDS - c * np.sign(f))))

    span = np.linspace(-abs(ours) * 2 - 1, abs(ours) * 2 + 1, 41)
    valid = [f for f in span if np.all(1 + f * (MIDS - c * np.sign(f))[probs > 0] > 0) and abs(f) <= kelly_max]
    assert all(growth(ours) >= growth(f) - 1e-15 for f in valid)


def test_kelly_golden_cases_hold_python_to_scipy():
    golden = json.loads((CONTRACTS / "golden" / "kelly.json").read_text())
    assert sum(c["expected"] != 0.0 for c in golden["cases"]) >= 10
    for case in golden["cases"]:
        got = kelly_exposure(case["probs"], case["returns"], case["cost"], case["kelly_max"])
        assert abs(got - case["expected"]) <= golden["tolerance"] * max(1.0, abs(case["expected"]))


def test_two_point_kelly_is_exposure_not_risk_fraction():
    p, gain, loss = 0.55, 8e-4, 6e-4  # bps-sized outcomes: exposure is ~1000x the seed's value
    f = kelly_exposure([p, 1 - p], [gain, -loss], 0.0, 1e6)
    assert f == pytest.approx(p / loss - (1 - p) / gain, rel=1e-12)
    assert f / (p - (1 - p) / (gain / loss)) == pytest.approx(1 / loss, rel=1e-9)


@settings(max_examples=60, deadline=None)
@given(p=probs_strategy, drawdown=st.floats(0.0, 0.1), rv=st.floats(0.0, 2.0), kill=st.booleans())
def test_size_respects_caps_and_guards(p, drawdown, rv, kill):
    cfg = SizingConfig.load()
    probs = np.asarray(p) / sum(p)
    risk = RiskState(nav=cfg.nav, intraday_drawdown=drawdown, kill=kill)
    guard = guard_for(cfg, risk, 0, 0, True)
    assert (guard == "drawdown_kill") == (kill or drawdown >= cfg.max_intraday_drawdown)
    r = position_size(cfg, risk, probs=probs, returns=MIDS, realized_vol=rv, adv_notional=1e9, guard=guard)
    cap = min(cfg.max_nav_frac, r.vol_scale, cfg.max_adv_share * 1e9 / cfg.nav)
    assert abs(r.size) <= cap + 1e-15
    if guard:
        assert r.size == 0.0
    else:
        assert r.size == pytest.approx(math.copysign(min(abs(r.kelly_frac), cap), r.kelly) if r.kelly else 0.0)
        # vol targeting caps: it never scales a position up or multiplies Kelly
        assert abs(r.size) <= abs(r.kelly_frac) + 1e-18
    tight = replace(cfg, max_adv_share=1e-9)
    r2 = position_size(tight, risk, probs=probs, returns=MIDS, realized_vol=rv, adv_notional=1e9, guard=None)
    assert abs(r2.size) <= 1e-9 * 1e9 / cfg.nav + 1e-18


def test_sizing_config_follows_its_schema():
    schema = json.loads((CONTRACTS / "sizing.schema.json").read_text())
    raw = json.loads((CONTRACTS / "sizing.json").read_text())
    jsonschema.validate(raw, schema)
    assert set(schema["required"]) == {f.name for f in __import__("dataclasses").fields(SizingConfig)}
    for case in CASES:
        jsonschema.validate(case["sizing"], schema)
