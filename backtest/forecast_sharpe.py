"""Backtest a model's out-of-sample bucket distributions: the evidence of the promotion's Sharpe gate.

``forecast_sharpe`` sizes every forecast with the strategy's sizing (``backtest.targets.size_signals``:
fractional Kelly net of costs, vol and NAV caps, the same code as the scorer's signals), runs the
engine over the bars with the strategy's costs and guards, and returns the Sharpe ratio with its
clustered-bootstrap CI (``backtest.evaluate``). Training does not import backtest; the promote flow
calls this and hands the figures to ``training.gates`` as ``SharpeEvidence``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import polars as pl

from backtest.engine import prepare
from backtest.evaluate import evaluate
from backtest.sizing import SizingConfig
from backtest.targets import size_signals
from core.errors import ConfigError
from core.strategy import BacktestSettings

Z95 = 1.959963984540054


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
    prep = prepare(bars, sized.select("symbol_id", "ts", "size"), settings, model_version=model_version, hold=hold)
    ev = evaluate(prep, settings, with_what_if=False)
    row = ev.metrics.filter(pl.col("metric") == "sharpe").row(0, named=True)
    lo, hi = float(row["lo"]), float(row["hi"])
    sigma = (hi - lo) / (2 * Z95) if math.isfinite(lo) and math.isfinite(hi) else math.nan
    return ForecastSharpe(
        sharpe=float(row["value"]),
        lower=lo,
        upper=hi,
        sigma=sigma,
        sessions=len(ev.daily.ret),
        signals=sized.height,
        trades=ev.result.trades.height,
        mean_abs_size=float(np.abs(sized["size"].to_numpy()).mean()),
        run_id=ev.result.run_id,
    )
