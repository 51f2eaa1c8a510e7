"""The simulator's oracle forecaster and the skill of a model relative to it (DESIGN section 11).

The oracle knows the simulator's latent state at each decision time (``lakehouse.sources.sim_latent``):
the true per-step volatility path, the sign and price of the last true trade, the trade intensity
and the jump rate. From them it builds the distribution of the h-step log return as a mixture of
normals and discretises it into the buckets:

- ``observation="mid"``: the true mid's return: drift from the order flow, variance = the sum of the
  latent sigma^2 over the horizon, plus Poisson jumps. With u_k the mean impact of one +1 trade in
  step k (``flow_unit``), lam_k the expected trades of step k, s the last sign, p the sign
  persistence, b the informed-flow bias now and phi its per-step decay (E[b_k | b] ~ phi^k b), the
  j-th next trade's sign has mean p^j s + (1 - p^j) b_j, so over the horizon's h steps

      drift = u_0 s G + b (sum_{k<h} u_k lam_k phi^k - u_0 G),  G = E[sum_{j=1}^{N} p^j], N ~ Poisson(sum lam_k)

  (the first term is the persistent last sign's drift; the second the informed flow's, less the part
  of the first few trades that still copies the last sign; b_j ~ b on those few trades, and the clip
  of b at +-0.95 is ignored in E[b_k]). Without informed flow (b = 0) only the first term remains.
- ``observation="trade"`` (labels from trade prices, as silver bars are): no trade in the horizon
  leaves the last price unchanged (a point mass at 0); otherwise the mid's return up to the step of
  the horizon's last trade (a trade of step k prints at the mid at the start of step k, so the mid
  has moved h - 1 steps, diffusion, flow and jumps alike; taking the last trade in the last step is
  exact at h = 1, where the trade's price is known but for its side, and otherwise approximate:
  with ~2 trades a step the last step holds a trade ~87 % of the time), plus the spread
  premium of the last trade in the horizon (its side has mean (s (E[p^N] - P(N=0)) + b phi^h
  (1 - E[p^N])) / P(N>0): the current side's memory, else the informed tilt at the horizon), minus the
  current premium, plus tick rounding noise.

It is an oracle for what is predictable from the latent state, not a perfect one (the variance of
the trade's step is approximated); a model that beats it shows up as skill > 1, which is reported.

``skill`` = (LS_climatology - LS_model) / (LS_climatology - LS_oracle) per horizon, with LS the
mean log score (negative log probability of the realised bucket): the share of the oracle's gain
over climatology that a model captures.
"""

from __future__ import annotations

import numpy as np
import polars as pl
from scipy.signal import lfilter
from scipy.special import ndtr
from scipy.stats import poisson

PROB_FLOOR = 1e-12


def _window_sum(x: np.ndarray, day: np.ndarray, idx: np.ndarray, h: int) -> np.ndarray:
    """Sum of ``x[idx : idx + h]`` clipped to the end of each index's day."""
    c = np.concatenate([[0.0], np.cumsum(x)])
    day_end = np.searchsorted(day, day[idx], side="right")
    end = np.minimum(idx + h, day_end)
    return c[end] - c[idx]


def _decayed_window_sum(x: np.ndarray, day: np.ndarray, idx: np.ndarray, h: int, phi: float) -> np.ndarray:
    """Sum of ``x[idx + k] * phi**k`` for k < h, clipped to the end of each index's day."""
    acc = np.empty_like(x)  # acc[i] = x[i] + phi * acc[i + 1] within a day, 0 past its end
    cuts = np.flatnonzero(np.diff(day)) + 1
    for lo, hi in zip(np.concatenate([[0], cuts]), np.concatenate([cuts, [len(x)]]), strict=True):
        acc[lo:hi] = lfilter([1.0], [1.0, -phi], x[lo:hi][::-1])[::-1]
    day_end = np.searchsorted(day, day[idx], side="right")
    end = idx + h
    tail = np.where(end < day_end, acc[np.minimum(end, len(x) - 1)], 0.0)
    return acc[idx] - phi**h * tail


def _flow_gain(lam: np.ndarray, p: float, j_max: int = 40) -> np.ndarray:
    """E[sum_{j=1}^{N} p^j] for N ~ Poisson(lam): the share of the last sign's drift realised."""
    pmf = np.exp(-lam)
    cdf = pmf.copy()
    total = np.zeros_like(lam)
    for j in range(1, j_max + 1):  # P(N >= j) = 1 - P(N <= j - 1), pmf by recursion
        total += p**j * np.maximum(1.0 - cdf, 0.0)
        pmf = pmf * lam / j
        cdf = cdf + pmf
    return total


def _mixture_cdf(edges: np.ndarray, comps: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> np.ndarray:
    """CDF at ``edges`` (bps) of a mixture of normals [(weight, mean, sd)], each (N,) in return units."""
    e = edges[None, :] * 1e-4
    out = np.zeros((comps[0][0].shape[0], edges.shape[0]))
    for w, m, s in comps:
        out += w[:, None] * ndtr((e - m[:, None]) / s[:, None])
    return out


def oracle_proba(
    latent: pl.DataFrame,
    ts_ns: np.ndarray,
    horizons_steps: tuple[int, ...],
    edges_bps: np.ndarray,
    *,
    sign_persistence: float,
    jump_bps: float,
    tick_size: float = 0.01,
    observation: str = "trade",
) -> np.ndarray:
    """Return the oracle's bucket probabilities (N, H, K) at decision times ``ts_ns`` of one symbol."""
    if observation not in ("trade", "mid"):
        raise ValueError(f"observation must be 'trade' or 'mid', got {observation!r}")
    lat = latent.sort("ts")
    grid = lat["ts"].dt.epoch("ns").to_numpy()
    idx = np.searchsorted(grid, np.asarray(ts_ns, dtype=np.int64))
    if np.any(idx >= len(grid)) or np.any(grid[np.minimum(idx, len(grid) - 1)] != ts_ns):
        raise ValueError("every decision time must be a step of the latent frame (same symbol, 1 step grid)")
    day = lat["day"].cast(pl.Int32).to_numpy()
    sig2 = lat["sigma"].to_numpy() ** 2
    lam = lat["trades_per_step"].to_numpy()
    jump = lat["jump_prob"].to_numpy()
    sign = lat["last_sign"].to_numpy()[idx].astype(np.float64)
    unit_all = lat["flow_unit"].to_numpy()
    unit = unit_all[idx]
    bias = lat["flow_bias"].to_numpy()[idx]
    phi = float(lat["flow_bias_decay"][0])
    informed = bool(np.any(bias != 0))
    hs = lat["half_spread"].to_numpy()[idx]
    offset = lat["trade_offset"].to_numpy()[idx]
    mid = lat["mid"].to_numpy()[idx]
    edges = np.asarray(edges_bps, dtype=np.float64)
    inner = edges[1:-1]
    p = sign_persistence
    out = np.empty((len(idx), len(horizons_steps), len(edges) - 1))
    for hi, h in enumerate(horizons_steps):
        # A trade of step k prints at the mid at the START of step k: the last trade of an h-step
        # horizon (step idx + h - 1) sees the mid moved by h - 1 steps, not h (module docstring).
        m = h if observation == "mid" else h - 1
        var = _window_sum(sig2, day, idx, m)
        n_trades = _window_sum(lam, day, idx, h)
        n_moving = _window_sum(lam, day, idx, m)  # trades whose impact reaches that mid
        gain = _flow_gain(n_moving, p)
        mu = unit * sign * gain - 0.5 * var
        if informed:  # the informed flow's drift (module docstring); skipped when there is none
            mu = mu + bias * (_decayed_window_sum(unit_all * lam, day, idx, m, phi) - unit * gain)
        q_jump = _window_sum(jump, day, idx, m)
        comps = []
        if observation == "mid":
            sides = [(np.ones_like(mu), np.zeros_like(mu))]
            p_none, noise = np.zeros_like(mu), np.zeros_like(mu)
        else:
            p_none = np.exp(-n_trades)
            keep = np.exp(-n_trades * (1 - p))  # E[p^N]: the last sign's memory at the horizon
            tilt = bias * phi**h  # E[b at the horizon]
            mean_last = (keep - p_none + sign * tilt * (1 - keep)) / np.maximum(1 - p_none, 1e-12)  # x sign
            same = np.clip(0.5 * (1 + mean_last), 0, 1)
            same = np.where(sign == 0, 0.5 * (1 + tilt), same)  # no trade yet: a fresh side, tilted by b
            s_eff = np.where(sign == 0, 1.0, sign)
            sides = [(same, s_eff * hs - offset), (1 - same, -s_eff * hs - offset)]
            noise = np.full_like(mu, 2 * (tick_size / mid) ** 2 / 12)
        for n_j, w_j in ((0, poisson.pmf(0, q_jump)), (1, poisson.pmf(1, q_jump)), (2, poisson.sf(1, q_jump))):
            sd = np.sqrt(var + noise + n_j * (jump_bps * 1e-4) ** 2)
            for w_s, shift in sides:
                comps.append(((1 - p_none) * w_j * w_s, mu + shift, np.maximum(sd, 1e-12)))
        cdf = _mixture_cdf(inner, comps) + p_none[:, None] * (inner[None, :] > 0)
        cdf = np.maximum.accumulate(np.clip(cdf, 0, 1), axis=1)
        probs = np.diff(np.concatenate([np.zeros((len(idx), 1)), cdf, np.ones((len(idx), 1))], axis=1), axis=1)
        probs = np.maximum(probs, PROB_FLOOR)
        out[:, hi, :] = probs / probs.sum(axis=1, keepdims=True)
    return out


def log_score(probs: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Mean negative log probability of the realised bucket per horizon, (H,)."""
    n, h, _ = probs.shape
    picked = np.take_along_axis(probs, y[:, :, None], axis=2)[:, :, 0]
    return -np.log(np.maximum(picked, PROB_FLOOR)).mean(axis=0)


def skill(model: np.ndarray, climatology: np.ndarray, oracle: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Share of the oracle's log-score gain over climatology that ``model`` captures, per horizon (H,).

    NaN where the oracle does not beat climatology (there is nothing to capture).
    """
    ls_m, ls_c, ls_o = log_score(model, y), log_score(climatology, y), log_score(oracle, y)
    gain = ls_c - ls_o
    return np.where(gain > 0, (ls_c - ls_m) / np.where(gain > 0, gain, 1.0), np.nan)
