"""Clustered bootstrap CIs and the deflated Sharpe ratio."""

from __future__ import annotations

import math

import numpy as np
import pytest

from backtest.bootstrap import bootstrap_metrics, deflated_sharpe, expected_max_sharpe, probabilistic_sharpe
from backtest.metrics import Daily


def make_daily(ret: np.ndarray) -> Daily:
    n = len(ret)
    return Daily(
        day=np.arange(n),
        ret=ret,
        pnl=ret * 1e6,
        exposure=np.ones(n),
        turnover=np.full(n, 0.1),
        week=np.arange(n) // 5,
    )


def ci(frame, metric):
    row = frame.filter(frame["metric"] == metric).row(0, named=True)
    return row["value"], row["lo"], row["hi"]


def test_sharpe_ci_matches_the_iid_standard_error():
    rng = np.random.default_rng(1)
    ret = rng.normal(0.0005, 0.01, 2000)
    out = bootstrap_metrics(make_daily(ret), draws=600, cluster="day", seed=3)
    value, lo, hi = ci(out, "sharpe")
    assert lo < value < hi
    sr = value / math.sqrt(252)  # per period
    se = math.sqrt((1 + sr * sr / 2) / len(ret)) * math.sqrt(252)  # Lo (2002), annualised
    assert (hi - lo) / (2 * 1.96) == pytest.approx(se, rel=0.15)


def test_week_clusters_widen_the_ci_of_dependent_returns():
    rng = np.random.default_rng(2)
    weekly = np.repeat(rng.normal(0, 0.01, 300), 5)  # the same shock all week: strong dependence
    ret = weekly + rng.normal(0.0003, 0.002, len(weekly))
    by_day = bootstrap_metrics(make_daily(ret), draws=400, cluster="day", seed=5)
    by_week = bootstrap_metrics(make_daily(ret), draws=400, cluster="week", seed=5)
    _, lo_d, hi_d = ci(by_day, "annual_return")
    _, lo_w, hi_w = ci(by_week, "annual_return")
    assert (hi_w - lo_w) > 1.5 * (hi_d - lo_d)
    assert by_week["n_clusters"][0] == 300


def test_bootstrap_is_reproducible_and_covers_every_metric():
    ret = np.random.default_rng(4).normal(0.0, 0.01, 300)
    a = bootstrap_metrics(make_daily(ret), draws=50, seed=9)
    b = bootstrap_metrics(make_daily(ret), draws=50, seed=9)
    assert a.equals(b)
    assert set(a["metric"]) >= {"sharpe", "calmar", "max_drawdown", "hit_rate", "profit_factor", "turnover", "exposure"}


def test_expected_max_sharpe_matches_monte_carlo():
    rng = np.random.default_rng(0)
    for n in (10, 100, 1000):
        simulated = rng.normal(0.0, 1.0, (4000, n)).max(axis=1).mean()
        assert expected_max_sharpe(n, 1.0) == pytest.approx(simulated, rel=0.03)


def test_deflated_sharpe_falls_with_more_trials_and_equals_psr_for_one():
    rng = np.random.default_rng(7)
    ret = rng.normal(0.001, 0.01, 1000)
    one = deflated_sharpe(ret, np.array([0.1]))
    from scipy import stats

    psr = probabilistic_sharpe(one["sharpe"], 0.0, len(ret), stats.skew(ret), stats.kurtosis(ret, fisher=False))
    assert one["dsr"] == pytest.approx(psr)
    trials = rng.normal(0.0, 0.03, 200)
    few, many = deflated_sharpe(ret, trials[:5]), deflated_sharpe(ret, trials)
    assert many["sr0"] > few["sr0"] > 0
    assert many["dsr"] < few["dsr"] < one["dsr"]


def test_vectorised_draws_equal_the_scalar_metrics():
    from backtest.bootstrap import cluster_ids, metrics_matrix, resample
    from backtest.metrics import compute

    rng = np.random.default_rng(8)
    ret = rng.normal(0.0002, 0.01, 120)
    d = Daily(
        day=np.arange(120),
        ret=ret,
        pnl=ret * 1e6,
        exposure=(rng.random(120) > 0.3) * 0.5,
        turnover=rng.random(120),
        week=np.arange(120) // 5 + (np.arange(120) > 60),  # uneven weeks: padded rows
    )
    idx, valid = resample(cluster_ids(d, "week"), 25, rng)
    assert len(set(valid.sum(axis=1))) > 1
    got = metrics_matrix(d, idx, valid)
    for b in range(25):
        want = compute(d.take(idx[b, valid[b]]))
        for name, value in want.items():
            assert got[name][b] == pytest.approx(value, rel=1e-10, nan_ok=True), name
