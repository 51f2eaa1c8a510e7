"""Ticks as events (fills at the next print) and half-spreads measured from quotes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from backtest.engine import run_backtest
from backtest.events import half_spread_from_quotes, ticks_as_bars
from core.strategy import BacktestCosts, BacktestGuards, BacktestSettings

T0 = datetime(2024, 3, 4, 15, 0, tzinfo=UTC)
SETTINGS = BacktestSettings(
    initial_cash=1_000_000.0,
    costs=BacktestCosts(fee_bps=0.0, half_spread_bps=3.0, slippage="none"),
    guards=BacktestGuards(max_nav_frac=1.0, max_adv_share=1e9, max_intraday_drawdown=1.0),
    calendar="XNYS",
)


def test_tick_signal_fills_at_the_next_print():
    ms = timedelta(milliseconds=1)
    trades = pl.DataFrame(
        {
            "symbol_id": "A:US",
            "ts": [T0, T0 + ms, T0 + ms, T0 + 5 * ms, T0 + 9 * ms],
            "price": [100.0, 100.5, 100.7, 101.0, 99.0],
            "size": [10.0, 5.0, 5.0, 20.0, 1.0],
        }
    )
    events = ticks_as_bars(trades)
    assert events.height == 4 and events["volume"].to_list() == [10.0, 10.0, 20.0, 1.0]
    signal = events.head(2).tail(1).select("symbol_id", "ts", pl.lit(50.0).alias("units"))
    result = run_backtest(events, signal, SETTINGS, target="units")
    fill = result.trades.row(0, named=True)
    assert fill["ts"] == T0 + 5 * ms and fill["ref_price"] == 101.0
    assert fill["fill_price"] == pytest.approx(101.0 * (1 + 3e-4))


def test_half_spread_from_quotes_replaces_the_proxy():
    minute = timedelta(minutes=1)
    bars = pl.DataFrame(
        {
            "symbol_id": "A:US",
            "ts": [T0 + minute, T0 + 2 * minute, T0 + 3 * minute],
            "open": [100.0, 100.0, 100.0],
            "close": [100.0, 100.0, 100.0],
            "volume": [1e4, 1e4, 1e4],
        }
    )
    quotes = pl.DataFrame(
        {
            "symbol_id": "A:US",
            "ts": [T0 + 70 * timedelta(seconds=1), T0 + 80 * timedelta(seconds=1), T0 + 100 * timedelta(seconds=1)],
            "bid": [99.99, 99.98, 99.99],
            "ask": [100.01, 100.02, 100.01],
        }
    )
    with_spread = half_spread_from_quotes(bars, quotes, 60_000_000_000)
    hs = with_spread["half_spread_bps"].to_list()
    assert hs[0] is None and hs[2] is None  # no quote inside the first and third minutes
    assert hs[1] == pytest.approx(1.0)  # median of 1, 2 and 1 bp: (ask - bid) / (ask + bid)
    signal = with_spread.head(1).select("symbol_id", "ts", pl.lit(10.0).alias("units"))
    fill = run_backtest(with_spread, signal, SETTINGS, target="units").trades.row(0, named=True)
    assert fill["fill_price"] == pytest.approx(100.0 * (1 + hs[1] * 1e-4))
