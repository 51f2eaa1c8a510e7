"""Backtest a model's out-of-sample bucket distributions: the evidence of the promotion's Sharpe gate.

``forecast_sharpe`` sizes every forecast with the strategy's sizing (``backtest.targets.size_signals``:
fractional Kelly net of costs, vol and NAV caps, the same code as the scorer's signals), runs the
engine over the bars with the strategy's costs and guards, and returns the annualised Sharpe ratio
of the NAV's returns per period (a minute for intraday bars, the bar for daily ones) with a
circular block-bootstrap CI (blocks of n^(1/3) periods keep the short dependence of held positions).

Not the daily-return Sharpe of ``backtest.evaluate``: a promotion judges a few held-out sessions,
and a Sharpe of two daily returns has no CI: its session bootstrap dropped the draws of one session
twice (no variance) and read [26.4, 26.4] for a 2-session demo run. Fewer than ``MIN_PERIODS``
period returns give no CI (the gate fails). Training does not import backtest; the promote flow
calls this and hands the figures to ``training.gates`` as ``SharpeEvidence``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import polars as pl

from backtest.engine import array_digest, prepare
from backtest.evaluate import evaluate
from backtest.sizing import SizingConfig
from backtest.targets import size_signals
from core.errors import ConfigError
from core.strategy import BacktestSettings

PERIOD = "1m"  # NAV returns per minute (a daily bar is its own period)
MIN_PERIODS = 20
TRADING_DAYS = 252


@dataclass(frozen=True)
class ForecastSharpe:
    """Sharpe of trading the forecasts, its CI, and what the figure rests on."""

    sharpe: float
    lower: float
    upper: float
    sigma: float  # bootstrap standard error, from the CI width
    sessions: int
    signals: int
    trades: int
    mean_abs_size: float
    run_id: str
    periods: int = 0  # period returns the Sharpe rests on
    block: int = 0  # bootstrap block length, in periods


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


def forecast_sharpe(
    probs: np.ndarray,
    symbols: np.ndarray,
    ts: pl.Series | np.ndarray,
    bars: pl.DataFrame,
    edges_bps: np.ndarray,
    sizing: SizingConfig,
    settings: BacktestSettings,
    *,
    model_version: str | None = None,
    hold: int = 1,
) -> ForecastSharpe:
    """Trade ``probs`` (N, K) of one horizon, issued at ``ts`` for ``symbols``, over ``bars``; return the Sharpe.

    ``bars`` are the symbols' bars at the model's timeframe (symbol_id, ts, open, high, low, close,
    volume) covering the forecasts; each forecast becomes a target size at the first bar that can
    see it (next-open fills). ``hold``: the forecasts a size is held for, the sizing horizon in
    forecast steps (``backtest.events.held_sizes``); 1 trades every forecast's size as the whole book.
    """
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[1] != len(edges_bps) - 1 or len(probs) != len(symbols):
        raise ConfigError(f"forecasts {probs.shape} do not match {len(symbols)} keys and {len(edges_bps) - 1} buckets")
    if len(probs) == 0:
        raise ConfigError("no forecasts to backtest")
    stamp = (
        ts
        if isinstance(ts, pl.Series)
        else pl.Series("ts", np.asarray(ts, dtype=np.int64)).cast(pl.Datetime("ns", "UTC"))
    )
    signals = pl.DataFrame({"symbol_id": np.asarray(symbols).astype(str), "ts": stamp, "probs": probs.tolist()})
    sized = size_signals(signals, np.asarray(edges_bps, dtype=np.float64), sizing, nav=settings.initial_cash)
    # the run's identity covers what it traded: forecasts and bars (two versions' runs never share an id)
    inputs = {
        "forecasts": array_digest(probs, stamp.dt.epoch("ns").to_numpy(), names=tuple(np.asarray(symbols).astype(str))),
        "bars": array_digest(*(bars[c].to_numpy() for c in ("open", "close", "volume"))),
        "hold": str(hold),
    }
    targets = sized.select("symbol_id", "ts", "size")
    prep = prepare(bars, targets, settings, model_version=model_version, hold=hold, data_versions=inputs)
    ev = evaluate(prep, settings, with_what_if=False)
    ret, per_session = period_returns(ev.result.equity)
    sharpe, lo, hi, sigma, block = block_bootstrap_sharpe(
        ret, TRADING_DAYS * per_session, settings.bootstrap_draws, settings.ci_level, settings.bootstrap_seed
    )
    return ForecastSharpe(
        sharpe=sharpe,
        lower=lo,
        upper=hi,
        sigma=sigma,
        sessions=len(ev.daily.ret),
        signals=sized.height,
        trades=ev.result.trades.height,
        mean_abs_size=float(np.abs(sized["size"].to_numpy()).mean()),
        run_id=ev.result.run_id,
        periods=len(ret),
        block=block,
    )
