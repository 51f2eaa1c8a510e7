"""How forecasts are judged (DESIGN section 11): proper scores, calibration, skill and their CIs.

Inputs per horizon: ``p`` (N, K) bucket probabilities, ``y`` (N,) realised bucket, optionally
``r`` (N,) realised return in bps (defaults to the bucket mid). The predictive distribution is read
as point masses at the bucket mids for CRPS (exactly what properscoring's weighted
``crps_ensemble`` computes) and for the direction event: "up" is a realised bucket whose mid return
is above zero, and P(up) is the mass of those buckets (DESIGN section 8: sizing reads each bucket as
the point mass r_k). The bucket around zero is "flat", neither up nor down, in the forecast and in
the outcome alike: on a 1-cent price lattice most short-horizon returns are exactly zero, and a P(up)
that split that bucket could never match a realised rate that counts zero as "not up".
Per-sample score arrays (``*_per_sample``) feed the block bootstrap of score differences by day.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from training.models.base import Buckets

ECE_BINS = 10
P_UP_RESOLUTION = 1e-6  # forecasts closer than this are the same forecast (float32 carries ~7 digits)
FLAT_TOLERANCE = 1e-6  # a bucket mid within this share of its width from zero is the flat bucket


def log_score_per_sample(p: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Negative log probability of the realised bucket (lower is better), (N,)."""
    return -np.log(np.maximum(p[np.arange(len(y)), y], 1e-300))


def rps_per_sample(p: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Ranked probability score over the K ordered buckets, divided by K - 1 (in [0, 1]), (N,)."""
    k = p.shape[1]
    obs_cdf = (np.arange(k)[None, :] >= y[:, None]).astype(np.float64)
    return ((np.cumsum(p, axis=1) - obs_cdf)[:, :-1] ** 2).sum(axis=1) / (k - 1)


def crps_per_sample(p: np.ndarray, r_bps: np.ndarray, mids_bps: np.ndarray) -> np.ndarray:
    """CRPS (bps) of point masses at the bucket mids against the realised return: the exact integral
    of (F(x) - 1{x >= r})^2 over the step CDF, in O(N K) memory and time."""
    m = np.asarray(mids_bps, dtype=np.float64)
    r = np.asarray(r_bps, dtype=np.float64)
    C = np.cumsum(p, axis=1)[:, :-1]  # F on [m_k, m_(k+1)), (N, K-1)
    dm = np.diff(m)  # (K-1,)
    A = np.concatenate([np.zeros((len(r), 1)), np.cumsum(C**2 * dm, axis=1)], axis=1)  # int of F^2 up to m_k
    B = np.concatenate([np.zeros((len(r), 1)), np.cumsum((1 - C) ** 2 * dm, axis=1)], axis=1)  # of (1-F)^2
    i = np.clip(np.searchsorted(m, r, side="right") - 1, 0, len(m) - 2)
    rows = np.arange(len(r))
    Ci = C[rows, i]
    inside = A[rows, i] + Ci**2 * (r - m[i]) + (1 - Ci) ** 2 * (m[i + 1] - r) + (B[:, -1] - B[rows, i + 1])
    below = (m[0] - r) + B[:, -1]
    above = A[:, -1] + (r - m[-1])
    return np.where(r < m[0], below, np.where(r >= m[-1], above, inside))


def up_mask(buckets: Buckets) -> np.ndarray:
    """1.0 for each bucket whose mid return is above zero, else 0.0, (K,): the "up" event.

    A mid within ``FLAT_TOLERANCE`` of its bucket's width from zero is zero (edges computed in
    floating point may leave the zero bucket's mid at 1e-16, which must not make it "up").
    """
    e = buckets.edges_bps
    return (buckets.mids_bps > FLAT_TOLERANCE * (e[1:] - e[:-1])).astype(np.float64)


def prob_up(p: np.ndarray, buckets: Buckets) -> np.ndarray:
    """P(up): the mass of the buckets whose mid return is above zero (the zero bucket is flat), (N,)."""
    return p @ up_mask(buckets)


def realised_up(y: np.ndarray, buckets: Buckets) -> np.ndarray:
    """1.0 where the realised bucket's mid return is above zero, else 0.0 (same shape as ``y``).

    Equivalently the realised return lies above the upper edge of the bucket holding zero; a return
    inside that bucket is flat, as ``prob_up`` counts it.
    """
    return up_mask(buckets)[np.asarray(y)]


def brier_per_sample(pu: np.ndarray, up: np.ndarray) -> np.ndarray:
    """Brier score of P(up) against the realised direction, (N,)."""
    return (pu - up) ** 2


def reliability(pu: np.ndarray, up: np.ndarray, bins: int = ECE_BINS) -> dict[str, np.ndarray]:
    """Reliability diagram data in equal-width bins of P(up): mean forecast, observed rate, count.

    A forecast is binned at ``P_UP_RESOLUTION``: 1/2 is a bin edge, and a symmetric float32 forecast
    lands a rounding error either side of it, which would otherwise split one forecast into two bins.
    """
    steps = round(1.0 / P_UP_RESOLUTION)
    idx = np.clip((np.rint(np.asarray(pu) * steps).astype(np.int64) * bins) // steps, 0, bins - 1)
    count = np.bincount(idx, minlength=bins).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_p = np.bincount(idx, weights=pu, minlength=bins) / count
        freq = np.bincount(idx, weights=up, minlength=bins) / count
    return {"bin_lo": np.arange(bins) / bins, "mean_p": mean_p, "freq": freq, "count": count}


def ece(pu: np.ndarray, up: np.ndarray, bins: int = ECE_BINS) -> float:
    """Expected calibration error of P(up): count-weighted mean |observed rate - mean forecast|."""
    rel = reliability(pu, up, bins)
    ok = rel["count"] > 0
    return float((rel["count"][ok] * np.abs(rel["freq"][ok] - rel["mean_p"][ok])).sum() / rel["count"].sum())


def ece_by_chance(pu: np.ndarray, level: float = 0.95, draws: int = 500, seed: int = 0) -> float:
    """The ``level`` quantile of the ECE a calibrated forecast reaches by chance on these forecasts.

    Consistency resampling (Broecker and Smith 2007): outcomes drawn as Bernoulli(``pu``), the ECE
    of ``pu`` against each draw. Binned ECE is biased upwards and its noise grows as samples
    shrink: on 90 independent 600 s windows the simulator's own oracle reads 0.12, and a
    calibrated forecast reaches 0.16 one time in twenty. The outcomes must be independent given
    the forecasts, so pass one window per horizon (``independent_rows``), not overlapping ones.
    """
    pu = np.asarray(pu, dtype=np.float64)
    if len(pu) == 0:
        return float("nan")
    rng = np.random.default_rng(seed)
    eces = [ece(pu, (rng.uniform(size=len(pu)) < pu).astype(np.float64)) for _ in range(draws)]
    return float(np.quantile(eces, level))


def series_runs(days: np.ndarray, series: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(group label per row, position of the row within its group): a group is one series on one day.

    Rows are in time order within a series; series may interleave (one row per symbol per step).
    Without ``series`` every day is one series.
    """
    days = np.asarray(days)
    keys = days.astype(np.int64) if series is None else np.stack([days, np.asarray(series)], axis=1)
    _, group = np.unique(keys, axis=0 if keys.ndim == 2 else None, return_inverse=True)
    group = group.reshape(-1)
    order = np.argsort(group, kind="stable")
    counts = np.bincount(group)
    pos = np.empty(len(group), dtype=np.int64)
    pos[order] = np.arange(len(group)) - np.repeat(np.cumsum(counts) - counts, counts)
    return group, pos


def independent_rows(days: np.ndarray, steps: int, series: np.ndarray | None = None) -> np.ndarray:
    """Indices of every ``steps``-th row of each series on each day: windows whose labels do not overlap.

    Rows of one series are one decision step apart, so rows ``steps`` apart have disjoint
    ``steps``-step labels.
    """
    if len(days) == 0:
        return np.zeros(0, dtype=np.int64)
    _, pos = series_runs(days, series)
    return np.flatnonzero(pos % max(int(steps), 1) == 0)


def pit(p: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Randomised PIT of a discrete forecast: uniform on [0, 1] when the forecast is calibrated, (N,)."""
    cdf = np.cumsum(p, axis=1)
    below = np.where(y > 0, cdf[np.arange(len(y)), np.maximum(y - 1, 0)], 0.0)
    return below + rng.uniform(size=len(y)) * p[np.arange(len(y)), y]


def moments(p: np.ndarray, mids_bps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Predictive mean and standard deviation (bps) of the bucket-mid distribution."""
    mean = p @ mids_bps
    return mean, np.sqrt(np.maximum(p @ mids_bps**2 - mean**2, 0.0))


def m6_rps(p5: np.ndarray, rank: np.ndarray) -> float:
    """M6 measure: RPS over the 5 quintile ranks (0..4) of each asset's return; a uniform forecast scores 0.16."""
    obs_cdf = (np.arange(5)[None, :] >= rank[:, None]).astype(np.float64)
    return float(((np.cumsum(p5, axis=1) - obs_cdf) ** 2).sum(axis=1).mean() / 5.0)


def quintile_ranks(returns: np.ndarray) -> np.ndarray:
    """Quintile rank 0..4 of each asset in a cross-section of returns (ties broken by order)."""
    order = np.argsort(np.argsort(returns, kind="stable"), kind="stable")
    return np.minimum((order * 5) // len(returns), 4)


def horizon_scores(
    p: np.ndarray, y: np.ndarray, buckets: Buckets, r_bps: np.ndarray | None = None, seed: int = 0
) -> dict[str, float]:
    """All section-11 scores of one horizon's forecasts (N, K) against outcomes (N,)."""
    mids = buckets.mids_bps
    r = mids[y] if r_bps is None else np.asarray(r_bps, dtype=np.float64)
    pu, up = prob_up(p, buckets), realised_up(y, buckets)
    mean, std = moments(p, mids)
    moved = r != 0
    pit_hist = np.histogram(pit(p, y, np.random.default_rng(seed)), bins=10, range=(0, 1))[0] / len(y)
    ic = stats.spearmanr(mean, r).statistic if np.ptp(mean) > 1e-9 and np.ptp(r) > 0 else np.nan
    return {
        "n": float(len(y)),
        "log_score": float(log_score_per_sample(p, y).mean()),
        "rps": float(rps_per_sample(p, y).mean()),
        "crps_bps": float(crps_per_sample(p, r, mids).mean()),
        "brier": float(brier_per_sample(pu, up).mean()),
        "ece": ece(pu, up),
        "sharpness_bps": float(std.mean()),
        "dir_acc": _dir_acc(mean[moved], r[moved]),
        "ic": float(ic),
        "pit_chi2": float(len(y) * ((pit_hist - 0.1) ** 2 / 0.1).sum()),  # ~ chi2(9) when calibrated
    }


def _dir_acc(mean: np.ndarray, r: np.ndarray) -> float:
    """Share of moves whose sign the predictive mean got right; a flat forecast (|mean| < 1e-9 bps) counts half."""
    if len(r) == 0:
        return np.nan
    flat = np.abs(mean) < 1e-9
    return float(np.where(flat, 0.5, np.sign(mean) == np.sign(r)).mean())


def block_bootstrap_ci(
    diff: np.ndarray, day: np.ndarray, *, block: int = 1, n_boot: int = 2000, level: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """Mean of per-sample score differences with a moving-block bootstrap CI over days.

    Samples are averaged per day first (intraday errors are correlated), then blocks of ``block``
    consecutive days are resampled; the CI is the percentile interval of the resampled mean of all
    samples (days weighted by their sample counts).
    """
    days, inv = np.unique(day, return_inverse=True)
    sums = np.bincount(inv, weights=diff)
    counts = np.bincount(inv).astype(np.float64)
    n = len(days)
    mean = float(sums.sum() / counts.sum())
    if n < 2:
        return mean, np.nan, np.nan
    block = max(1, min(block, n))
    rng = np.random.default_rng(seed)
    n_blocks = int(np.ceil(n / block))
    starts = rng.integers(0, n - block + 1, size=(n_boot, n_blocks))
    picks = (starts[:, :, None] + np.arange(block)[None, None, :]).reshape(n_boot, -1)[:, :n]
    boot = sums[picks].sum(axis=1) / counts[picks].sum(axis=1)
    a = (1.0 - level) / 2.0
    return mean, float(np.quantile(boot, a)), float(np.quantile(boot, 1.0 - a))


def skill_share(model_ls: float, clim_ls: float, oracle_ls: float) -> float:
    """Share of the oracle's log-score gain over climatology that a model captures (1 = oracle)."""
    gain = clim_ls - oracle_ls
    return float((clim_ls - model_ls) / gain) if gain > 0 else np.nan
