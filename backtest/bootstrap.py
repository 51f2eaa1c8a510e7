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
PERIOD = "1m"  # NAV returns per minute (a daily bar is its own period)
MIN_PERIODS = 20


def cluster_ids(daily: Daily, cluster: str) -> np.ndarray:
    """Cluster label per daily row: its session (``day``) or its calendar week (``week``)."""
    if cluster == "day":
        return np.arange(len(daily.ret))
    if cluster == "week":
        return np.unique(daily.week, return_inverse=True)[1]
    raise ConfigError(f"bootstrap cluster must be 'day' or 'week', got {cluster!r}")


def metrics_matrix(
    daily: Daily, idx: np.ndarray, valid: np.ndarray, ann: float = ANNUALIZATION
) -> dict[str, np.ndarray]:
    """Every metric for each row of ``idx`` (B, L): row b is the daily sample ``daily[idx[b, valid[b]]]``.

    Invalid (padding) cells sit at the end of a row and count as flat days (return 0, no P&L, no
    exposure) excluded from means, so each row equals ``metrics.compute`` on its sample.
    """
    n = valid.sum(axis=1)
    ret = np.where(valid, daily.ret[idx], 0.0)
    pnl = np.where(valid, daily.pnl[idx], 0.0)
    expo = np.where(valid, daily.exposure[idx], 0.0)
    turn = np.where(valid, daily.turnover[idx], 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = ret.sum(axis=1) / n
        var = (np.where(valid, ret - mean[:, None], 0.0) ** 2).sum(axis=1) / (n - 1)
        sd = np.sqrt(var)
        sharpe = np.where(sd > 0, mean / sd * math.sqrt(ann), np.nan)
        wealth = np.concatenate([np.ones((len(ret), 1)), np.cumprod(1.0 + ret, axis=1)], axis=1)
        mdd = (wealth / np.maximum.accumulate(wealth, axis=1) - 1.0).min(axis=1)
        annual = wealth[:, -1] ** (ann / n) - 1.0
        calmar = np.where(mdd < 0, annual / np.abs(mdd), np.nan)
        active = valid & (expo > 0)
        hit = np.where(active.any(axis=1), (active & (pnl > 0)).sum(axis=1) / active.sum(axis=1), np.nan)
        loss = -np.where(pnl < 0, pnl, 0.0).sum(axis=1)
        pf = np.where(loss > 0, np.where(pnl > 0, pnl, 0.0).sum(axis=1) / loss, np.nan)
    return {
        "sharpe": sharpe,
        "calmar": calmar,
        "max_drawdown": mdd,
        "annual_return": annual,
        "hit_rate": hit,
        "profit_factor": pf,
        "turnover": turn.sum(axis=1) / n * ann,
        "exposure": expo.sum(axis=1) / n,
    }


def resample(labels: np.ndarray, draws: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Draw clusters with replacement (as many as there are) per draw; return (idx, valid), rows padded."""
    order = np.argsort(labels, kind="stable")
    sizes = np.bincount(labels)
    starts = np.r_[0, np.cumsum(sizes)[:-1]]
    pick = rng.integers(0, len(sizes), (draws, len(sizes)))
    lengths = sizes[pick]  # (B, G)
    total = lengths.sum(axis=1)
    width = int(total.max())
    idx = np.zeros((draws, width), dtype=np.int64)
    valid = np.arange(width)[None, :] < total[:, None]
    for b in range(draws):  # one concatenation per draw: G small ranges
        rows = np.repeat(starts[pick[b]] - np.r_[0, np.cumsum(lengths[b])[:-1]], lengths[b]) + np.arange(total[b])
        idx[b, : total[b]] = order[rows]
    return idx, valid


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
    point = compute(daily, ann)
    n_groups = int(labels.max()) + 1 if len(labels) else 0
    samples = (
        metrics_matrix(daily, *resample(labels, draws, np.random.default_rng(seed)), ann)
        if n_groups
        else {name: np.full(draws, np.nan) for name in METRICS}
    )
    lo_q, hi_q = (1 - level) / 2, 1 - (1 - level) / 2
    rows = []
    for name in METRICS:
        ok = samples[name][np.isfinite(samples[name])]
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
                "n_clusters": n_groups,
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


def period_returns(equity: pl.DataFrame) -> tuple[np.ndarray, float]:
    """NAV returns per ``PERIOD`` (the last NAV of each period against the previous period's) and
    the periods per session, for annualising."""
    nav = (
        equity.sort("ts")
        .with_columns(pl.col("ts").dt.truncate(PERIOD).alias("_p"))
        .group_by("_p", maintain_order=True)
        .agg(pl.col("nav").last(), pl.col("day").last())
    )
    values = nav["nav"].to_numpy()
    ret = values[1:] / values[:-1] - 1.0
    sessions = max(nav["day"].n_unique(), 1)
    return ret, len(values) / sessions


def block_bootstrap_sharpe(
    ret: np.ndarray, per_year: float, draws: int, level: float, seed: int
) -> tuple[float, float, float, float, int]:
    """(Sharpe, lower, upper, bootstrap sd, block) of period returns ``ret``, annualised by ``per_year``.

    Circular block bootstrap (Politis and Romano 1992) with blocks of ceil(n^(1/3)) periods; NaN
    bounds when there are fewer than ``MIN_PERIODS`` returns or none varies.
    """
    n = len(ret)
    sd = float(np.std(ret, ddof=1)) if n > 1 else 0.0
    sharpe = float(np.mean(ret) / sd * math.sqrt(per_year)) if sd > 0 else math.nan
    block = max(1, math.ceil(n ** (1 / 3)))
    if n < MIN_PERIODS or not math.isfinite(sharpe):
        return sharpe, math.nan, math.nan, math.nan, block
    rng = np.random.default_rng(seed)
    k = math.ceil(n / block)
    starts = rng.integers(0, n, (draws, k))
    idx = ((starts[:, :, None] + np.arange(block)[None, None, :]) % n).reshape(draws, -1)[:, :n]
    sample = ret[idx]
    with np.errstate(invalid="ignore", divide="ignore"):
        boot = sample.mean(axis=1) / sample.std(axis=1, ddof=1) * math.sqrt(per_year)
    boot = boot[np.isfinite(boot)]
    if len(boot) < draws // 2:
        return sharpe, math.nan, math.nan, math.nan, block
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(boot, [alpha, 1.0 - alpha])
    return sharpe, float(lo), float(hi), float(np.std(boot, ddof=1)), block
