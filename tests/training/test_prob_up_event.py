"""One "up" event everywhere: the mass of buckets whose mid is above zero, the zero bucket flat.

On a 1-cent price lattice most short-horizon returns are exactly zero (66 % of BAC's 1 s returns).
A P(up) that splits the zero bucket while "up" is counted as r > 0 reads ECE ~0.3 for a perfectly
calibrated forecast; these tests fail on that old definition and hold the metric, the gates, the
P(up) calibration and the signal (the scorer's Python reference) to one event.
"""

import numpy as np

from backtest.signal import summarize_all
from training import gates
from training.calibration import apply_up_slopes, up_fractions
from training.metrics import ece, horizon_scores, prob_up, realised_up, up_mask
from training.models.base import Buckets, default_edges_bps

BUCKETS = Buckets(default_edges_bps(21, -10, 10))  # 1 bp buckets, mids -10..+10, zero bucket [-0.5, 0.5)
TICK_BPS = 3.0  # one cent on a ~$33 stock


def _lattice(n: int = 40_000, seed: int = 0):
    """Forecasts with 2/3 of their mass at exactly zero, outcomes drawn from them (calibrated by construction)."""
    rng = np.random.default_rng(seed)
    drift = rng.uniform(-0.15, 0.15, size=n)
    moves = np.array([-TICK_BPS, 0.0, TICK_BPS])
    law = np.stack([0.17 - drift, np.full(n, 0.66), 0.17 + drift], axis=1)  # P(-1 tick), P(0), P(+1 tick)
    k = (rng.uniform(size=n)[:, None] > np.cumsum(law, axis=1)).sum(axis=1)
    r = moves[k]
    p = np.zeros((n, BUCKETS.k))
    cols = BUCKETS.index(moves)
    for j, c in enumerate(cols):
        p[:, c] += law[:, j]
    return p, BUCKETS.index(r), r


def test_calibrated_lattice_forecast_reads_calibrated():
    p, y, r = _lattice()
    assert (r == 0).mean() > 0.6
    pu, up = prob_up(p, BUCKETS), realised_up(y, BUCKETS)
    assert np.array_equal(up, (r > 0.5).astype(float))  # up = above the zero bucket's upper edge
    assert ece(pu, up) < 0.01
    assert horizon_scores(p, y, BUCKETS, r)["ece"] < 0.01
    # the old event: P(up) split the zero bucket (half of it counted up) while up was r > 0
    e = BUCKETS.edges_bps
    split = np.clip((e[1:] - np.maximum(e[:-1], 0.0)) / (e[1:] - e[:-1]), 0.0, 1.0)
    assert ece(p @ split, (r > 0).astype(float)) > 0.3


def test_gates_calibration_and_signal_share_the_event():
    p, y, _ = _lattice(n=3_000, seed=1)
    probs = np.stack([p, p[::-1]], axis=1)  # (N, H=2, K)
    ys = np.stack([y, y[::-1]], axis=1)
    pu_gate = gates.prob_up(probs, BUCKETS.edges_bps)
    np.testing.assert_allclose(pu_gate[:, 0], prob_up(p, BUCKETS), rtol=0, atol=1e-15)
    np.testing.assert_array_equal(gates.realised_up(ys, BUCKETS.edges_bps)[:, 0], realised_up(y, BUCKETS))
    np.testing.assert_array_equal(up_fractions(BUCKETS), up_mask(BUCKETS))
    s = summarize_all(p[:50], BUCKETS.edges_bps)
    np.testing.assert_allclose(s["prob_up"], prob_up(p[:50], BUCKETS), rtol=0, atol=1e-12)
    up_mid = BUCKETS.mids_bps * up_mask(BUCKETS) * 1e-4
    np.testing.assert_allclose(s["avg_gain"], (p[:50] @ up_mid) / prob_up(p[:50], BUCKETS), rtol=1e-12)
    # a P(up) slope moves only the up mass: the zero bucket stays flat and P(up) lands on the target
    slopes = np.array([1.7, 0.5])
    cal = apply_up_slopes(probs, slopes, BUCKETS)
    pu = np.clip(pu_gate, 1e-6, 1 - 1e-6)
    target = 1.0 / (1.0 + np.exp(-slopes * np.log(pu / (1 - pu))))
    np.testing.assert_allclose(gates.prob_up(cal, BUCKETS.edges_bps), target, atol=1e-9)


def test_zero_bucket_mid_from_float_edges_is_flat():
    edges = np.linspace(-10.5, 10.5, 22)  # float edges: the zero bucket's mid may be 1e-16, not 0
    b = Buckets(edges)
    mask = up_mask(b)
    assert mask.sum() == 10 and mask[10] == 0.0
    onehot = np.zeros((1, b.k))
    onehot[0, 10] = 1.0
    assert summarize_all(onehot, edges)["prob_up"][0] == 0.0
