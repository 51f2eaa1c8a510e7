"""Confidence intervals for backtest metrics, and the deflated Sharpe ratio.

Clustered bootstrap: the daily series is cut into clusters (each session, or each calendar
week), clusters are drawn with replacement until as many as the sample holds, and every metric is
recomputed on the concatenation; the CI is the percentile interval of the draws. Week clusters
keep the dependence inside a week (volatility clustering, positions held over days).

Deflated Sharpe ratio (Bailey and Lopez de Prado, 2014): the probability that the true Sharpe
exceeds the largest one expected from ``n_trials`` unskilled configurations, given the variance of
the Sharpe ratios across trials, the sample length and the returns' skewness and kurtosis.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl
from scipy import stats

from backtest.metrics import ANNUALIZATION, METRICS, Daily, compute
from core.errors import ConfigError

EULER_GAMMA = 0.5772156649015329


def cluster_ids(daily: Daily, cluster: str) -> np.ndarray:
    """Cluster label per daily row: its session (``day``) or its calendar week (``week``)."""
    if cluster == "day":
        return np.arange(len(daily.ret))
    if cluster == "week":
        return np.unique(daily.week, return_inverse=True)[1]
    raise ConfigError(f"bootstrap cluster must be 'day' or 'week', got {cluster!r}")


def bootstrap_metrics(
    daily: Daily,
    *,
    draws: int = 1000,
    cluster: str = "day",
    level: float = 0.95,
    seed: int = 7,
    ann: float = ANNUALIZATION,
) -> pl.DataFrame:
    """Point value and clustered-bootstrap CI of every metric (metric, value, lo, hi, level, cluster, draws)."""
    labels = cluster_ids(daily, cluster)
    groups = [np.flatnonzero(labels == g) for g in range(labels.max() + 1)] if len(labels) else []
    rng = np.random.default_rng(seed)
    samples = {name: np.empty(draws) for name in METRICS}
    for b in range(draws):
        pick = rng.integers(0, len(groups), len(groups))
        idx = np.concatenate([groups[g] for g in pick]) if len(groups) else np.array([], dtype=np.int64)
        d = daily.take(idx)
        for name, fn in METRICS.items():
            samples[name][b] = fn(d, ann)
    point = compute(daily, ann)
    lo_q, hi_q = (1 - level) / 2, 1 - (1 - level) / 2
    rows = []
    for name, values in samples.items():
        ok = values[np.isfinite(values)]
        lo, hi = np.quantile(ok, [lo_q, hi_q]) if len(ok) else (math.nan, math.nan)
        rows.append(
            {
                "metric": name,
                "value": point[name],
                "lo": float(lo),
                "hi": float(hi),
                "level": level,
                "cluster": cluster,
                "draws": draws,
                "n_clusters": len(groups),
            }
        )
    return pl.DataFrame(rows)


def expected_max_sharpe(n_trials: int, sr_variance: float) -> float:
    """Expected maximum of ``n_trials`` Sharpe ratios of zero-skill strategies with that variance."""
    if n_trials < 1:
        raise ConfigError("n_trials must be >= 1")
    if n_trials == 1:
        return 0.0
    z1 = stats.norm.ppf(1.0 - 1.0 / n_trials)
    z2 = stats.norm.ppf(1.0 - 1.0 / (n_trials * math.e))
    return math.sqrt(sr_variance) * ((1.0 - EULER_GAMMA) * z1 + EULER_GAMMA * z2)


def probabilistic_sharpe(sr: float, sr_benchmark: float, n_obs: int, skew: float, kurtosis: float) -> float:
    """P(true Sharpe > benchmark) for per-period ``sr`` over ``n_obs`` returns (kurtosis: not excess)."""
    denom = 1.0 - skew * sr + (kurtosis - 1.0) / 4.0 * sr * sr
    if n_obs < 2 or denom <= 0:
        return math.nan
    return float(stats.norm.cdf((sr - sr_benchmark) * math.sqrt(n_obs - 1) / math.sqrt(denom)))


def deflated_sharpe(returns: np.ndarray, trial_sharpes: np.ndarray) -> dict[str, float]:
    """Deflated Sharpe ratio of ``returns`` (per-period) chosen as the best of ``trial_sharpes``.

    ``trial_sharpes``: the per-period (not annualised) Sharpe ratio of every configuration tried.
    """
    r = np.asarray(returns, dtype=np.float64)
    trials = np.asarray(trial_sharpes, dtype=np.float64)
    if len(r) < 3:
        raise ConfigError("deflated Sharpe needs at least 3 returns")
    sd = np.std(r, ddof=1)
    sr = float(np.mean(r) / sd) if sd > 0 else math.nan
    var = float(np.var(trials, ddof=1)) if len(trials) > 1 else 0.0
    sr0 = expected_max_sharpe(max(len(trials), 1), var)
    skew = float(stats.skew(r))
    kurt = float(stats.kurtosis(r, fisher=False))
    return {
        "sharpe": sr,
        "sr0": sr0,
        "n_trials": float(len(trials)),
        "dsr": probabilistic_sharpe(sr, sr0, len(r), skew, kurt),
    }
