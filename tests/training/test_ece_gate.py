"""The ECE gate judges calibration on windows whose labels do not overlap, against sampling noise.

Found on the demo: with two 35-minute test days the simulator's own oracle read ECE 0.15 at 300 s
over every (overlapping) window and was refused; a gate that refuses the true distribution is
judging noise. A forecast that is miscalibrated where there is evidence must still fail.
"""

from __future__ import annotations

import numpy as np
import pytest

from core.strategy import Promotion
from training.gates import FAIL, PASS, ece_gate, evaluate_gates, within_day_blocks
from training.metrics import ece, ece_by_chance, independent_rows
from training.models.base import default_edges_bps

EDGES = default_edges_bps()
UP, DOWN = 60, 40  # bucket indices with mids +10 and -10 bps


def two_point(pu: np.ndarray) -> np.ndarray:
    """(N, 1, K) forecasts putting pu on +10 bps and 1 - pu on -10 bps."""
    p = np.full((len(pu), 1, len(EDGES) - 1), 1e-9)
    p[:, 0, UP], p[:, 0, DOWN] = pu, 1 - pu
    return p / p.sum(axis=2, keepdims=True)


def overlapping(days: int, rows: int, horizon: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A calibrated forecast of a ``horizon``-step label, one row per step: forecasts and outcomes
    move slowly (consecutive windows share all but one step), so the rows are ~rows/horizon draws."""
    rng = np.random.default_rng(seed)
    blocks = -(-rows // horizon)
    pu = np.repeat(rng.uniform(0.25, 0.75, size=(days, blocks)), horizon, axis=1)[:, :rows].ravel()
    up = (rng.uniform(size=(days, blocks)) < pu.reshape(days, rows)[:, ::horizon]).repeat(horizon, axis=1)
    y = np.where(up[:, :rows].ravel(), UP, DOWN)[:, None]
    return pu, y, np.repeat(np.arange(days), rows)


def test_independent_rows_take_one_window_per_horizon_within_each_day():
    days = np.array([0, 0, 0, 0, 0, 1, 1, 1, 2])
    assert independent_rows(days, 2).tolist() == [0, 2, 4, 5, 7, 8]
    assert independent_rows(days, 1).tolist() == list(range(9))
    assert len(independent_rows(np.array([], dtype=int), 3)) == 0


def test_chance_ece_grows_as_windows_shrink():
    pu = np.random.default_rng(0).uniform(0.3, 0.7, 20_000)
    assert ece_by_chance(pu[:100]) > 2 * ece_by_chance(pu[:2_000]) > 4 * ece_by_chance(pu)
    assert ece_by_chance(pu[:14]) > 0.1  # 14 windows: a 0.05 gate cannot be judged


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_calibrated_forecast_on_few_long_windows_passes(seed):
    pu, y, days = overlapping(days=2, rows=2_100, horizon=300, seed=seed)
    gate = ece_gate(two_point(pu), y, days, EDGES, 0.05, (300,))
    assert gate.status == PASS, gate.detail
    assert "too few windows" in gate.detail


def test_the_old_reading_refused_it():
    """Every overlapping row counted as a sample: a calibrated forecast read as miscalibrated."""
    reads = []
    for seed in (1, 2, 3):
        pu, y, _ = overlapping(days=2, rows=2_100, horizon=300, seed=seed)
        reads.append(ece(pu, (y[:, 0] == UP).astype(float)))
    assert max(reads) > 0.05


def test_a_miscalibrated_forecast_with_evidence_fails_and_names_the_horizon():
    rng = np.random.default_rng(4)
    n = 6_000
    pu_true = rng.uniform(0.4, 0.6, n)
    y1 = np.where(rng.uniform(size=n) < pu_true, UP, DOWN)
    pu = np.clip(0.5 + 2.5 * (pu_true - 0.5), 0, 1)  # over-confident: 0.45 -> 0.375
    probs = np.concatenate([two_point(pu_true), two_point(pu)], axis=1)
    y = np.stack([y1, y1], axis=1)
    days = np.repeat(np.arange(3), n // 3)
    gate = ece_gate(probs, y, days, EDGES, 0.02, (1, 1))
    assert gate.status == FAIL and "horizon 1 exceeds" in gate.detail
    d = evaluate_gates(probs, y, days, EDGES, Promotion(max_ece=0.02), horizon_steps=(1, 1))
    assert not d.passed and any(r.startswith("ece:") for r in d.reasons)


def test_two_test_days_give_a_real_interval_for_the_log_score_gain():
    """Two days' means are not a 95 % interval: within-day blocks of the longest horizon widen it."""
    rng = np.random.default_rng(6)
    rows, horizon = 2_100, 300
    days = np.repeat(np.arange(2), rows)
    drift = np.repeat(rng.normal(0.0, 0.06, 2 * rows // horizon), horizon)  # slow, overlapping-window noise
    y = np.full((len(days), 1), UP)
    p_cand = 0.55 + 0.2 * np.tanh(drift)
    cand, base = two_point(p_cand), two_point(np.full(len(days), 0.55))
    by_day = evaluate_gates(cand, y, days, EDGES, Promotion(), baselines={"b": base})
    both = evaluate_gates(cand, y, days, EDGES, Promotion(), baselines={"b": base}, horizon_steps=(horizon,))
    day_ci, wide_ci = by_day.summary["gains"]["b"], both.summary["gains"]["b"]
    assert wide_ci["lower"] <= day_ci["lower"] and wide_ci["upper"] >= day_ci["upper"]
    assert wide_ci["upper"] - wide_ci["lower"] > 2 * (day_ci["upper"] - day_ci["lower"])
    assert within_day_blocks(np.array([4, 4, 4, 9, 9]), 2).tolist() == [0, 0, 1, 6, 6]


def test_interleaved_symbols_are_thinned_and_blocked_per_symbol():
    """Training windows are sorted by time, so symbols interleave row by row: "every h-th row" would
    keep windows of one symbol h / n_symbols steps apart, overlapping."""
    days = np.array([0] * 6 + [1] * 2)
    series = np.array([0, 1, 0, 1, 0, 1, 0, 1])
    assert independent_rows(days, 2, series).tolist() == [0, 1, 4, 5, 6, 7]
    blocks = within_day_blocks(days, 2, series)
    assert blocks[0] == blocks[2] != blocks[4] and blocks[1] == blocks[3] != blocks[0]
    assert len(set(blocks[[0, 1, 6, 7]].tolist())) == 4
