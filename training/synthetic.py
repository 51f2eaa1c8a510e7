"""A small learnable market for tests and benchmarks: windows, bucket labels and the true distribution.

One series of one-step log returns r_(t+1) = sigma_t (beta * s_t + eps_(t+1)), eps ~ Student-t(5)
scaled to unit variance, where the order-flow signal s_t is AR(1) and the volatility sigma_t
switches between two regimes (a Markov chain). The features at t are [r_t, s_t, |r_t|] (the return
in log units, so ``ret_unit_bps=1e4``), so a model that reads s_t and the recent |r| can beat
climatology, and a model that knows (s_t, sigma_t) (``oracle_proba``) is the ceiling.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from training.models.base import Buckets

DOF = 5.0


@dataclass(frozen=True)
class SyntheticConfig:
    """Size and dynamics of the synthetic market (vol in bps per step)."""

    n_steps: int = 6000
    lookback: int = 16
    horizons: tuple[int, ...] = (1, 4)
    beta: float = 0.6  # signal strength in units of sigma
    phi: float = 0.9  # AR(1) coefficient of the signal
    vols_bps: tuple[float, float] = (2.0, 6.0)
    switch: float = 0.01  # per-step regime switch probability
    steps_per_day: int = 500  # for day-blocked splits and bootstrap
    seed: int = 0


@dataclass(frozen=True)
class SyntheticData:
    """Windows X (N, L, 3), labels y (N, H), realised returns r_bps (N, H), day (N,), times (N,) and latent state."""

    X: np.ndarray
    y: np.ndarray
    r_bps: np.ndarray
    day: np.ndarray
    times: np.ndarray
    signal: np.ndarray
    sigma_bps: np.ndarray
    cfg: SyntheticConfig


def simulate(cfg: SyntheticConfig, buckets: Buckets) -> SyntheticData:
    """Simulate the market and cut it into (window, label) samples in time order."""
    rng = np.random.default_rng(cfg.seed)
    n = cfg.n_steps
    s = np.empty(n)
    s[0] = 0.0
    shocks = rng.normal(size=n) * np.sqrt(1 - cfg.phi**2)
    for t in range(1, n):
        s[t] = cfg.phi * s[t - 1] + shocks[t]
    regime = np.cumsum(rng.uniform(size=n) < cfg.switch) % 2
    sigma = np.asarray(cfg.vols_bps)[regime]
    eps = rng.standard_t(DOF, size=n) / np.sqrt(DOF / (DOF - 2))
    r = np.zeros(n)
    r[1:] = sigma[:-1] * (cfg.beta * s[:-1] + eps[1:])  # r[t] is realised over (t-1, t]
    feats = np.stack([r * 1e-4, s, np.abs(r) * 1e-4], axis=1).astype(np.float32)
    L, hmax = cfg.lookback, max(cfg.horizons)
    t_idx = np.arange(L - 1, n - hmax)  # decision times
    windows = np.lib.stride_tricks.sliding_window_view(feats, L, axis=0).transpose(0, 2, 1)
    X = windows[t_idx - L + 1]
    csum = np.concatenate([[0.0], np.cumsum(r)])
    r_h = np.stack([csum[t_idx + 1 + h] - csum[t_idx + 1] for h in cfg.horizons], axis=1)
    return SyntheticData(
        X=np.ascontiguousarray(X),
        y=buckets.index(r_h),
        r_bps=r_h,
        day=t_idx // cfg.steps_per_day,
        times=t_idx.astype(np.int64),
        signal=s[t_idx],
        sigma_bps=sigma[t_idx],
        cfg=cfg,
    )


def oracle_proba(data: SyntheticData, buckets: Buckets, n_paths: int = 4000, seed: int = 1) -> np.ndarray:
    """The forecaster that knows the latent state: h = 1 exactly, longer horizons by Monte Carlo paths."""
    cfg = data.cfg
    out = []
    for h in cfg.horizons:
        if h == 1:
            loc = data.sigma_bps * cfg.beta * data.signal
            scale = data.sigma_bps / np.sqrt(DOF / (DOF - 2))

            def cdf(e: np.ndarray, loc: np.ndarray = loc, scale: np.ndarray = scale) -> np.ndarray:
                return stats.t.cdf((e - loc[:, None]) / scale[:, None], DOF)

            out.append(buckets.from_cdf(cdf))
            continue
        rng = np.random.default_rng(seed)
        n = len(data.signal)
        probs = np.zeros((n, buckets.k))
        for _ in range(max(1, n_paths // 200)):
            m = 200
            s = np.repeat(data.signal[:, None], m, axis=1)
            sig = np.repeat(data.sigma_bps[:, None], m, axis=1)
            total = np.zeros((n, m))
            for _step in range(h):
                eps = rng.standard_t(DOF, size=(n, m)) / np.sqrt(DOF / (DOF - 2))
                total += sig * (cfg.beta * s + eps)
                s = cfg.phi * s + rng.normal(size=(n, m)) * np.sqrt(1 - cfg.phi**2)
                flip = rng.uniform(size=(n, m)) < cfg.switch
                sig = np.where(flip, np.where(sig == cfg.vols_bps[0], cfg.vols_bps[1], cfg.vols_bps[0]), sig)
            idx = buckets.index(total)
            np.add.at(probs, (np.repeat(np.arange(n), m), idx.ravel()), 1.0)
        probs = (probs + 0.5) / (probs.sum(axis=1, keepdims=True) + 0.5 * buckets.k)
        out.append(probs)
    return np.stack(out, axis=1)
