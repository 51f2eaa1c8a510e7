"""The true market of one symbol for one session: price path, volatility regimes and true trades.

Volatility is a Markov regime (level) times a log-OU factor, both stepped each minute, times an
intraday U-shape. Trades arrive as a Poisson process with the same U-shaped intensity; their signs
are persistent and each trade moves the mid permanently (square-root in size), so the flow in a
step predicts that step's return. Compound-Poisson jumps complete the return. Everything is
vectorised except the minute-level regime/vol recursion (at most 1,440 steps a day).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter

from lakehouse.schema import MINUTE_NS
from lakehouse.sources.sim_config import Dynamics
from lakehouse.sources.sim_session import NS_PER_S, Session, u_shape


@dataclass(frozen=True)
class PathState:
    """What carries from one session to the next: log price, regime and log-vol factor."""

    logp: float
    regime: int
    logv: float


@dataclass(frozen=True)
class TruthDay:
    """The true market of one session. Grid arrays are per base step; trade arrays per true trade."""

    grid_ns: np.ndarray  # (S,) int64 step start
    price: np.ndarray  # (S,) mid at the step start
    regime: np.ndarray  # (S,) int8
    vol: np.ndarray  # (S,) annualised instantaneous vol
    half_spread: np.ndarray  # (S,) as a fraction of the mid
    trade_ts: np.ndarray  # (N,) int64, sorted
    trade_step: np.ndarray  # (N,) index into the grid
    trade_price: np.ndarray  # (N,) mid of the step +- half spread by side (not tick-rounded)
    trade_size: np.ndarray  # (N,) float64
    trade_side: np.ndarray  # (N,) int8, +1 buyer-initiated, -1 seller-initiated
    flow_bias: np.ndarray  # (S,) informed-flow tilt b of E[fresh sign] during the step (0 without informed flow)


def _regimes_and_logv(rng: np.random.Generator, minutes: int, dyn: Dynamics, state: PathState):
    k = len(dyn.regime_vol)
    stay = np.exp(-1.0 / dyn.regime_minutes)
    phi = np.exp(-1.0 / dyn.vol_reversion_minutes)
    switch = rng.random(minutes) > stay
    jump_to = rng.integers(1, max(k, 2), minutes)  # offset to another regime
    eps = rng.standard_normal(minutes) * dyn.vol_of_vol * np.sqrt(1 - phi * phi)
    regime = np.empty(minutes, np.int8)
    logv = np.empty(minutes)
    r, v = state.regime % k, state.logv
    for m in range(minutes):  # minute-level recursion: <= 1,440 steps a day
        if switch[m] and k > 1:
            r = (r + jump_to[m]) % k
        v = phi * v + eps[m]
        regime[m], logv[m] = r, v
    return regime, logv


BIAS_CLIP = 0.95  # |b| cap: a fresh sign is never certain


def informed_bias(rng: np.random.Generator, n_steps: int, dyn: Dynamics, dt: float) -> np.ndarray:
    """Per-step informed-flow tilt b = clip(informed_bias * x): x a unit OU started from its stationary law."""
    if dyn.informed_bias == 0:
        return np.zeros(n_steps)
    phi = 0.5 ** (dt / dyn.informed_half_life_s)
    eps = rng.standard_normal(n_steps) * np.sqrt(1 - phi * phi)
    eps[0] = rng.standard_normal()  # x_0 ~ N(0, 1): the session opens with a fresh, stationary bias
    x = lfilter([1.0], [1.0, -phi], eps)  # x_k = phi x_{k-1} + eps_k
    return np.clip(dyn.informed_bias * x, -BIAS_CLIP, BIAS_CLIP)


def _signs(rng: np.random.Generator, n: int, persistence: float, bias: np.ndarray | None = None) -> np.ndarray:
    """Persistent trade signs: each repeats the previous with ``persistence``, else is fresh (P(+1) = (1 + bias) / 2)."""
    if bias is None:
        fresh = rng.choice(np.array([-1, 1], np.int8), n)
    else:
        fresh = np.where(rng.random(n) < (1 + bias) / 2, 1, -1).astype(np.int8)
    keep = rng.random(n) < persistence
    if n:
        keep[0] = False
    src = np.maximum.accumulate(np.where(keep, 0, np.arange(n)))
    return fresh[src]


def simulate_truth(
    rng: np.random.Generator,
    session: Session,
    dyn: Dynamics,
    trades_per_day: int,
    base_ms: int,
    year_s: float,
    state: PathState,
) -> tuple[TruthDay, PathState]:
    """Simulate one session from ``state``; return the day's truth and the state at its close."""
    base_ns = base_ms * 1_000_000
    n_steps = max(1, (session.close_ns - session.open_ns) // base_ns)
    grid = session.open_ns + np.arange(n_steps, dtype=np.int64) * base_ns
    frac = (grid - session.open_ns + base_ns / 2) / session.full_ns
    season = np.maximum(u_shape(frac, dyn.seasonality), 0.05)

    minutes = int((grid[-1] - session.open_ns) // MINUTE_NS) + 1
    regime_m, logv_m = _regimes_and_logv(rng, minutes, dyn, state)
    minute = (grid - session.open_ns) // MINUTE_NS
    regime = regime_m[minute]
    mult = np.asarray(dyn.regime_vol)[regime] * np.exp(logv_m[minute] - dyn.vol_of_vol**2 / 2)
    vol = dyn.annual_vol * mult * np.sqrt(season)
    dt = base_ms / 1000.0
    sigma = vol * np.sqrt(dt / year_s)

    # True trades: Poisson counts per step with seasonal intensity, uniform times within the step.
    lam = trades_per_day / (session.full_ns / NS_PER_S) * dt * season
    counts = rng.poisson(lam)
    n = int(counts.sum())
    step = np.repeat(np.arange(n_steps), counts)
    ts = np.sort(grid[step] + rng.integers(0, base_ns, n))
    bias = informed_bias(rng, n_steps, dyn, dt)
    side = _signs(rng, n, dyn.sign_persistence, bias[step] if dyn.informed_bias else None)
    size = np.maximum(1.0, np.round(dyn.mean_size * rng.lognormal(-0.32, 0.8, n)))

    # Return of each step: diffusion + signed flow impact + jumps.
    p = dyn.sign_persistence
    flow = np.bincount(step, weights=side * np.sqrt(size / dyn.mean_size), minlength=n_steps)
    flow_scale = np.sqrt(dyn.impact_share * (1 - p) / (1 + p)) / np.sqrt(np.maximum(lam, 1.0))
    diffusion = np.sqrt(1 - dyn.impact_share) * rng.standard_normal(n_steps)
    jumps = (rng.random(n_steps) < dyn.jumps_per_day * base_ns / session.full_ns) * rng.normal(
        0.0, dyn.jump_bps * 1e-4, n_steps
    )
    ret = sigma * (diffusion + flow * flow_scale) + jumps - sigma**2 / 2
    logp = state.logp + np.concatenate(([0.0], np.cumsum(ret[:-1])))
    price = np.exp(logp)
    half_spread = dyn.half_spread_bps * 1e-4 * np.sqrt(mult)
    trade_price = price[step] * (1 + side * half_spread[step])

    truth = TruthDay(grid, price, regime, vol, half_spread, ts, step, trade_price, size, side, bias)
    end = PathState(float(logp[-1] + ret[-1]), int(regime_m[-1]), float(logv_m[-1]))
    return truth, end
