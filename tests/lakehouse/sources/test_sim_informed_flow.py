"""The simulator's informed order flow: off by default (the output is the pre-feature output), and when on,
signed flow is persistent over minutes, the latent bias predicts the mid's forward return, and the oracle
that knows the bias forecasts better than one that does not."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from lakehouse.sources.sim_config import SimParams
from lakehouse.sources.sim_latent import latent_frame
from lakehouse.sources.simulator import simulate_days
from training.oracle import log_score, oracle_proba

NS = 1_000_000_000


def _day(informed_bias: float, minutes: int = 40, seed: int = 5):
    params = SimParams(
        symbols=["SIM1:SIM"],
        session_minutes=minutes,
        trades_per_day=40_000,
        seed=seed,
        tables=["sim_truth"],
        dynamics={"informed_bias": informed_bias},
    )
    ((_, _, truth),) = list(simulate_days(params))
    return params, truth


def _window_flow_corr(truth, window_s: int) -> float:
    """Correlation of the net trade sign in one ``window_s`` window with that of the next window."""
    k = (truth.trade_ts - truth.grid_ns[0]) // (window_s * NS)
    flow = np.bincount(k, weights=truth.trade_side.astype(np.float64))
    return float(np.corrcoef(flow[:-1], flow[1:])[0, 1])


def test_off_by_default_reproduces_the_pre_feature_output():
    # Pinned from the simulator before informed flow existed (commit 5152b61): same draws, same path.
    params, truth = _day(0.0, minutes=20, seed=3)
    assert params.dynamics == SimParams().dynamics  # strength 0 is the default
    assert len(truth.trade_side) == 4064
    assert int(truth.trade_side.sum()) == -86 and int(truth.trade_size.sum()) == 411_717
    assert float(truth.price[-1]) == pytest.approx(99.28459048877455, rel=1e-12)
    assert not truth.flow_bias.any()


def test_informed_flow_is_persistent_and_predicts_the_drift():
    _, plain = _day(0.0)
    params, informed = _day(0.2)
    # Sign persistence alone forgets within a few trades (~100 trades per 30 s): adjacent windows unrelated.
    assert abs(_window_flow_corr(plain, 30)) < 0.2
    assert _window_flow_corr(informed, 30) > 0.25
    # The latent bias predicts the mid's return over the next 60 s.
    h = 60
    logp = np.log(informed.price)
    assert np.corrcoef(informed.flow_bias[:-h], logp[h:] - logp[:-h])[0, 1] > 0.1
    # The latent frame exposes the same bias, and an oracle that uses it beats one that ignores it.
    lat = latent_frame(params, "SIM1:SIM")
    np.testing.assert_array_equal(lat["flow_bias"].to_numpy(), informed.flow_bias)
    horizons, edges = (60, 300), np.arange(-50.5, 51.0, 1.0)
    s = np.arange(0, len(logp) - max(horizons))
    y = np.stack([np.searchsorted(edges[1:-1], 1e4 * (logp[s + k] - logp[s]), side="right") for k in horizons], 1)
    kw = {"sign_persistence": params.dynamics.sign_persistence, "jump_bps": params.dynamics.jump_bps}
    knows = oracle_proba(lat, informed.grid_ns[s], horizons, edges, observation="mid", **kw)
    blind = oracle_proba(
        lat.with_columns(pl.lit(0.0).alias("flow_bias")), informed.grid_ns[s], horizons, edges, observation="mid", **kw
    )
    assert np.all(log_score(knows, y) < log_score(blind, y) - 0.01)
