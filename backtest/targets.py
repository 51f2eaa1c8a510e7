"""Target exposures for the engine from a signal frame, through the scorer's sizing (backtest/sizing.py).

A signal frame is one row per (symbol_id, ts[, known_at]) with either
- ``size``: the signed exposure already sized (gold.signals holds what the scorer published), or
- ``probs``: the bucket probabilities at the sizing horizon (a model's walk-forward predictions),
  sized here with the same formulas as the scorer: Kelly exposure over the bucket mid returns, net
  of the sizing contract's cost, alpha-fractional, capped by vol targeting, NAV and ADV.
The drawdown guard is not applied here: the engine's loop owns the portfolio's drawdown.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from backtest.sizing import RiskState, SizingConfig, position_size
from core.errors import ConfigError


def hold_steps(horizons, horizon_unit: str, tf: str, sizing_horizon: int) -> int:
    """Signals a size is held for: the sizing horizon in steps of the model's timeframe (1 when the
    model does not forecast that horizon, so the scorer sizes another and nothing is held).

    ``horizon_unit`` is "s" (tick models: horizons in seconds) or "bars" (horizons in bars of ``tf``).
    """
    from core.timetypes import tf_ns

    if sizing_horizon not in horizons:
        return 1
    if horizon_unit == "s":
        step = tf_ns(tf)
        return max(1, round(sizing_horizon * 1_000_000_000 / step)) if step else 1
    return max(1, int(sizing_horizon))


def bucket_returns(edges_bps) -> np.ndarray:
    """Simple returns of the bucket mids (edges are log-return bps), as the scorer sizes them."""
    e = np.asarray(edges_bps, dtype=np.float64) * 1e-4
    return np.expm1(0.5 * (e[:-1] + e[1:]))


def size_signals(signals: pl.DataFrame, edges_bps, cfg: SizingConfig, nav: float | None = None) -> pl.DataFrame:
    """Return ``signals`` with a ``size`` column (kept if present, else sized from ``probs``).

    Optional columns read per row: ``realized_vol`` (annualised, vol targeting) and
    ``adv_notional`` (ADV cap), as the scorer reads them from the features.
    """
    if "size" in signals.columns:
        return signals
    if "probs" not in signals.columns:
        raise ConfigError(f"signals need a 'size' or a 'probs' column; have {signals.columns}")
    returns = bucket_returns(edges_bps).tolist()
    risk = RiskState(nav=nav or cfg.nav)
    n_k = len(returns)
    vols = signals["realized_vol"].to_list() if "realized_vol" in signals.columns else [None] * signals.height
    advs = signals["adv_notional"].to_list() if "adv_notional" in signals.columns else [None] * signals.height
    sizes = np.empty(signals.height)
    for i, (p, rv, adv) in enumerate(zip(signals["probs"].to_list(), vols, advs, strict=True)):
        if p is None or len(p) != n_k:
            raise ConfigError(f"signals row {i}: probs has {0 if p is None else len(p)} buckets, edges give {n_k}")
        sizes[i] = position_size(
            cfg, risk, probs=p, returns=returns, realized_vol=rv, adv_notional=adv, guard=None
        ).size
    return signals.with_columns(pl.Series("size", sizes))
