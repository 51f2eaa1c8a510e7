"""Scores equal their independent implementations (properscoring, scoringrules) and behave as scores."""

import numpy as np
import properscoring as ps
import pytest
import scoringrules as sr

from training.metrics import (
    block_bootstrap_ci,
    brier_per_sample,
    crps_per_sample,
    ece,
    horizon_scores,
    log_score_per_sample,
    m6_rps,
    pit,
    prob_up,
    quintile_ranks,
    realised_up,
    rps_per_sample,
)
from training.models.base import Buckets, default_edges_bps

BUCKETS = Buckets(default_edges_bps(21, -10, 10))


def _forecasts(n=300, seed=0):
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.full(BUCKETS.k, 0.7), size=n)
    y = rng.integers(0, BUCKETS.k, size=n)
    return p, y, rng


def test_crps_equals_properscoring_weighted_ensemble():
    p, y, rng = _forecasts()
    r = BUCKETS.mids_bps[y] + rng.uniform(-0.5, 0.5, size=len(y)) * 3  # not on the grid
    r[:6] = [-40.0, 40.0, -10.0, 10.0, 0.0, 3.0]  # beyond both ends, on the end mids, on interior mids
    ens = np.broadcast_to(BUCKETS.mids_bps, p.shape)
    np.testing.assert_allclose(crps_per_sample(p, r, BUCKETS.mids_bps), ps.crps_ensemble(r, ens, weights=p), rtol=1e-9)


def test_rps_equals_scoringrules():
    p, y, _ = _forecasts()
    ref = sr.rps_score(np.eye(BUCKETS.k)[y], p, onehot=True) / (BUCKETS.k - 1)
    np.testing.assert_allclose(rps_per_sample(p, y), ref, rtol=1e-9)


def test_log_score_and_brier_equal_scoringrules():
    p, y, rng = _forecasts()
    np.testing.assert_allclose(log_score_per_sample(p, y), sr.log_score(1.0, p[np.arange(len(y)), y]), rtol=1e-9)
    pu, up = prob_up(p, BUCKETS), rng.integers(0, 2, size=len(y)).astype(float)
    np.testing.assert_allclose(brier_per_sample(pu, up), sr.brier_score(up, pu), rtol=1e-9)


def test_m6_uniform_scores_016_and_perfect_scores_0():
    rank = quintile_ranks(np.random.default_rng(0).normal(size=100))
    assert np.bincount(rank).tolist() == [20] * 5
    assert m6_rps(np.full((100, 5), 0.2), rank) == pytest.approx(0.16)
    assert m6_rps(np.eye(5)[rank], rank) == 0.0


def test_calibrated_forecaster_has_small_ece_and_uniform_pit():
    rng = np.random.default_rng(3)
    n = 20_000
    scale = rng.uniform(1, 5, size=n)
    from scipy import stats

    p = BUCKETS.from_cdf(lambda e: stats.norm.cdf(e / scale[:, None]))
    r = rng.normal(size=n) * scale
    y = BUCKETS.index(r)
    pu = prob_up(p, BUCKETS)
    assert ece(pu, realised_up(y, BUCKETS)) < 0.02
    h = np.histogram(pit(p, y, rng), bins=10, range=(0, 1))[0] / n
    assert np.abs(h - 0.1).max() < 0.01
    s = horizon_scores(p, y, BUCKETS, r)
    assert s["pit_chi2"] < 30 and 0.45 < s["dir_acc"] < 0.55
    wrong = BUCKETS.from_cdf(lambda e: stats.norm.cdf(e / scale[:, None] - 0.5))  # biased
    assert horizon_scores(wrong, y, BUCKETS, r)["log_score"] > s["log_score"]
    assert ece(prob_up(wrong, BUCKETS), realised_up(y, BUCKETS)) > 0.1


def test_block_bootstrap_ci_covers_zero_for_noise_and_not_for_a_shift():
    rng = np.random.default_rng(5)
    day = np.repeat(np.arange(60), 50)
    noise = rng.normal(size=len(day)) + np.repeat(rng.normal(size=60), 50)  # day effects
    m, lo, hi = block_bootstrap_ci(noise, day, block=2)
    assert lo < 0 < hi or abs(m) > 0.2
    m, lo, hi = block_bootstrap_ci(noise + 1.0, day)
    assert lo > 0.3 and lo < m < hi
