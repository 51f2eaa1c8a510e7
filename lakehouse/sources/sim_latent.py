"""The simulator's latent state, per base step: what an oracle forecaster would know.

``latent_frame`` replays the simulator (same params and seed => the same truth as the ingested
data) and returns, for every base step of one symbol's sessions, the true mid, regime, annualised
vol, per-step sigma, half spread, the sign and log premium of the last true trade before the step
starts, the mean impact of one trade (which, with the sign persistence, gives the flow drift ahead),
the expected trades per step, the jump rate, and the informed-flow bias b of the step with its
per-step decay phi = 0.5 ** (dt / informed_half_life_s) (E[b_{s+k} | b_s] ~ phi^k b_s; b = 0 when
``Dynamics.informed_bias`` is 0). Nothing here is
observable by a model; it exists so that ``training.oracle`` can say how much of the predictable
part of the return a model has found.

Timing: row ``s`` describes the decision time ``ts = grid[s]`` (the start of step ``s`` = the end of
the 1 s bar stamped ``ts``); ``last_sign`` uses only trades before ``ts``; ``flow_bias`` is the latent bias in force from ``ts`` on.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from lakehouse.sources.sim_config import SimParams
from lakehouse.sources.sim_price import TruthDay
from lakehouse.sources.simulator import simulate_days


def _mean_sqrt_size() -> float:
    """E[sqrt(size / mean_size)] of the simulator's lognormal sizes (before rounding and the floor of 1)."""
    return float(np.exp(0.5 * -0.32 + 0.125 * 0.8**2))


def latent_day(params: SimParams, session_full_ns: int, truth: TruthDay) -> dict[str, np.ndarray]:
    """Latent columns of one symbol-session (see the module docstring)."""
    dyn = params.dynamics
    base_ns = params.base_ms * 1_000_000
    dt = params.base_ms / 1000.0
    year_s = 365 * 86_400.0 if params.session == "24/7" else 252 * 23_400.0
    sigma = truth.vol * np.sqrt(dt / year_s)
    n = truth.grid_ns.shape[0]
    # Sign of the last true trade strictly before each step's start (0 before the first trade).
    idx = np.searchsorted(truth.trade_ts, truth.grid_ns, side="left") - 1
    last_sign = np.where(idx >= 0, truth.trade_side[np.maximum(idx, 0)], 0).astype(np.int8)
    # Expected seasonal trade count per step, as the simulator draws it.
    open_ns = int(truth.grid_ns[0])
    frac = (truth.grid_ns - open_ns + base_ns / 2) / session_full_ns
    from lakehouse.sources.sim_session import u_shape

    season = np.maximum(u_shape(frac, dyn.seasonality), 0.05)
    lam = params.trades_per_day / (session_full_ns / 1e9) * dt * season
    p = dyn.sign_persistence
    flow_scale = np.sqrt(dyn.impact_share * (1 - p) / (1 + p)) / np.sqrt(np.maximum(lam, 1.0))
    # E[sign of the j-th next trade | last sign] = p^j * last_sign; summed over j >= 1: p / (1 - p).
    last_price = np.where(idx >= 0, truth.trade_price[np.maximum(idx, 0)], truth.price)
    return {
        "ts": truth.grid_ns.astype(np.int64),
        "mid": truth.price,
        "regime": truth.regime,
        "vol": truth.vol,
        "sigma": sigma,
        "half_spread": truth.half_spread,
        "last_sign": last_sign,
        "trade_offset": np.log(last_price / truth.price),  # last true trade's log premium over the mid
        "flow_unit": sigma * flow_scale * _mean_sqrt_size(),  # mean return impact of one trade of sign +1
        "trades_per_step": lam,
        "jump_prob": np.full(n, dyn.jumps_per_day * base_ns / session_full_ns),
        "flow_bias": truth.flow_bias,  # E[fresh sign] tilt of the informed flow during the step
        "flow_bias_decay": np.full(n, 0.5 ** (dt / dyn.informed_half_life_s)),  # per-step AR(1) coefficient of b
    }


def latent_frame(params: SimParams, symbol: str) -> pl.DataFrame:
    """Per-step latent state of ``symbol`` over every simulated session (deterministic from the seed)."""
    if symbol not in params.symbols:
        raise ValueError(f"{symbol!r} is not one of the simulated symbols {params.symbols}")
    parts = []
    for sym, session, truth in simulate_days(params):
        if sym == symbol:
            cols = latent_day(params, session.full_ns, truth)
            n = len(cols["ts"])
            parts.append(pl.DataFrame({"symbol_id": [symbol] * n, "day": [session.day] * n, **cols}))
    return pl.concat(parts).with_columns(pl.col("ts").cast(pl.Datetime("ns", "UTC")))
