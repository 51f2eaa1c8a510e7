"""Performance metrics of a backtest, on its DAILY series (one row per session).

Sharpe, annual return, max drawdown and Calmar follow empyrical's definitions (Sharpe: mean over
sample std (ddof 1) times sqrt(annualisation), no risk-free rate; drawdown against the running
peak of compounded wealth starting at 1; Calmar: compound annual growth over |max drawdown|), so
empyrical-reloaded is their oracle. Hit rate and profit factor are over sessions with exposure;
turnover is traded notional over mean NAV per year; exposure the mean gross exposure over NAV.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import polars as pl

ANNUALIZATION = 252


@dataclass(frozen=True)
class Daily:
    """One row per session: return, P&L, mean gross exposure / NAV, traded notional / NAV, week label."""

    day: np.ndarray
    ret: np.ndarray
    pnl: np.ndarray
    exposure: np.ndarray
    turnover: np.ndarray
    week: np.ndarray

    def take(self, idx: np.ndarray) -> Daily:
        return Daily(*(getattr(self, f)[idx] for f in ("day", "ret", "pnl", "exposure", "turnover", "week")))


def daily_series(equity: pl.DataFrame, initial_cash: float) -> Daily:
    """Collapse an equity curve (ts, day, nav, gross, traded) to sessions."""
    d = (
        equity.group_by("day", maintain_order=True)
        .agg(
            pl.col("nav").last(),
            (pl.col("gross") / pl.col("nav")).mean().alias("exposure"),
            pl.col("traded").sum(),
            pl.col("ts").last(),
        )
        .sort("day")
    )
    nav = d["nav"].to_numpy()
    prev = np.r_[initial_cash, nav[:-1]]
    week = d.select(pl.col("ts").dt.truncate("1w").dt.epoch("d"))["ts"].to_numpy()
    return Daily(
        day=d["day"].to_numpy(),
        ret=nav / prev - 1.0,
        pnl=nav - prev,
        exposure=d["exposure"].fill_nan(0.0).to_numpy(),
        turnover=d["traded"].to_numpy() / prev,
        week=week,
    )


def sharpe(ret: np.ndarray, ann: float = ANNUALIZATION) -> float:
    """Annualised Sharpe ratio (no risk-free rate)."""
    if len(ret) < 2:
        return math.nan
    sd = np.std(ret, ddof=1)
    return float(np.mean(ret) / sd * math.sqrt(ann)) if sd > 0 else math.nan


def max_drawdown(ret: np.ndarray) -> float:
    """Largest peak-to-trough fall of compounded wealth (a negative fraction, 0 without a fall)."""
    if len(ret) == 0:
        return math.nan
    wealth = np.r_[1.0, np.cumprod(1.0 + ret)]
    return float(np.min(wealth / np.maximum.accumulate(wealth) - 1.0))


def annual_return(ret: np.ndarray, ann: float = ANNUALIZATION) -> float:
    """Compound annual growth rate."""
    if len(ret) == 0:
        return math.nan
    return float(np.prod(1.0 + ret) ** (ann / len(ret)) - 1.0)


def calmar(ret: np.ndarray, ann: float = ANNUALIZATION) -> float:
    """Annual return over |max drawdown| (NaN without a drawdown)."""
    mdd = max_drawdown(ret)
    return annual_return(ret, ann) / abs(mdd) if mdd < 0 else math.nan


def hit_rate(pnl: np.ndarray, exposure: np.ndarray) -> float:
    """Share of sessions with exposure that made money."""
    active = exposure > 0
    return float(np.mean(pnl[active] > 0)) if active.any() else math.nan


def profit_factor(pnl: np.ndarray) -> float:
    """Gross profit over gross loss of the sessions."""
    loss = -pnl[pnl < 0].sum()
    return float(pnl[pnl > 0].sum() / loss) if loss > 0 else math.nan


METRICS: dict[str, Callable[[Daily, float], float]] = {
    "sharpe": lambda d, ann: sharpe(d.ret, ann),
    "calmar": lambda d, ann: calmar(d.ret, ann),
    "max_drawdown": lambda d, ann: max_drawdown(d.ret),
    "annual_return": lambda d, ann: annual_return(d.ret, ann),
    "hit_rate": lambda d, ann: hit_rate(d.pnl, d.exposure),
    "profit_factor": lambda d, ann: profit_factor(d.pnl),
    "turnover": lambda d, ann: float(np.mean(d.turnover) * ann) if len(d.turnover) else math.nan,
    "exposure": lambda d, ann: float(np.mean(d.exposure)) if len(d.exposure) else math.nan,
}


def compute(daily: Daily, ann: float = ANNUALIZATION) -> dict[str, float]:
    """Every metric of ``METRICS`` on the daily series."""
    return {name: fn(daily, ann) for name, fn in METRICS.items()}
