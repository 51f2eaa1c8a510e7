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

from dataclasses import dataclass

import numpy as np
import polars as pl

from backtest.bootstrap import block_bootstrap_sharpe, period_returns
from backtest.engine import array_digest, prepare
from backtest.evaluate import evaluate
from backtest.sizing import SizingConfig
from backtest.targets import size_signals
from core.errors import ConfigError
from core.strategy import BacktestSettings

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
