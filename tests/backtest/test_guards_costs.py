"""Guards fire (NAV cap, ADV cap, intraday drawdown kill switch), halts and sessions delay fills, costs by hand."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from backtest.engine import run_backtest
from core.strategy import BacktestCosts, BacktestGuards, BacktestSettings

OPEN = datetime(2024, 3, 4, 14, 30, tzinfo=UTC)  # XNYS session open (EST)


def minute_bars(closes: list[float], *, start=OPEN, volume=1000.0, symbol="A:US") -> pl.DataFrame:
    n = len(closes)
    closes = np.asarray(closes, dtype=np.float64)
    return pl.DataFrame(
        {
            "symbol_id": symbol,
            "ts": [start + timedelta(minutes=i + 1) for i in range(n)],
            "open": np.r_[closes[0], closes[:-1]],
            "close": closes,
            "volume": np.full(n, volume),
        }
    )


def settings(**guards) -> BacktestSettings:
    g = {"max_nav_frac": 1.0, "max_adv_share": 1e9, "max_intraday_drawdown": 0.5} | guards
    return BacktestSettings(
        initial_cash=1_000_000.0,
        costs=BacktestCosts(fee_bps=0.0, half_spread_bps=0.0, slippage="none"),
        guards=BacktestGuards(**g),
        calendar="XNYS",
    )


def every_bar(bars: pl.DataFrame, size: float) -> pl.DataFrame:
    return bars.select("symbol_id", "ts", pl.lit(size).alias("size"))


def test_drawdown_kill_switch_flattens_and_waits_for_the_next_session():
    day1 = minute_bars([100.0] * 5 + [97.0, 94.0, 92.0, 95.0, 99.0])
    day2 = minute_bars([99.0] * 5, start=OPEN + timedelta(days=1))
    bars = pl.concat([day1, day2])
    result = run_backtest(bars, every_bar(bars, 1.0), settings(max_intraday_drawdown=0.05))
    kills = result.kills
    assert kills.height == 1
    assert kills["ts"][0] == day1["ts"][6]  # NAV fell 6% at the 94 close
    fills = result.trades.filter(pl.col("kind") == "fill")
    flat = fills.filter(pl.col("ts") == day1["ts"][7])
    assert flat.height == 1 and flat["qty"][0] == pytest.approx(-10_000.0)  # flattened at the next open
    assert fills.filter((pl.col("ts") > day1["ts"][7]) & (pl.col("ts") <= day1["ts"][-1])).height == 0
    assert fills.filter(pl.col("ts") > day1["ts"][-1]).height == 1  # trading resumes next session


def test_nav_cap_limits_exposure():
    bars = minute_bars([100.0] * 6)
    result = run_backtest(bars, every_bar(bars, 0.9), settings(max_nav_frac=0.05))
    fills = result.trades.filter(pl.col("kind") == "fill")
    assert fills["qty"][0] == pytest.approx(0.05 * 1_000_000 / 100.0)
    assert result.equity["gross"].max() <= 0.05 * 1_000_000 + 1e-6


def test_adv_cap_limits_each_order_to_a_share_of_past_volume():
    day1 = minute_bars([100.0] * 5, volume=2_000.0)  # ADV from day 1: 10,000 shares
    day2 = minute_bars([100.0] * 5, start=OPEN + timedelta(days=1))
    bars = pl.concat([day1, day2])
    signals = day2.head(1).select("symbol_id", "ts", pl.lit(0.5).alias("size"))
    result = run_backtest(bars, signals, settings(max_adv_share=0.1))
    assert result.trades.filter(pl.col("kind") == "fill")["qty"].to_list() == [pytest.approx(1_000.0)]


def test_orders_wait_through_halts_and_outside_sessions():
    bars = minute_bars([100.0, 101.0, 102.0, 103.0, 104.0]).with_columns(
        pl.when(pl.int_range(pl.len()).is_in([1, 2])).then(0.0).otherwise(pl.col("volume")).alias("volume")
    )
    night = minute_bars([100.0], start=OPEN - timedelta(hours=10))  # 04:31 UTC: no XNYS session
    all_bars = pl.concat([night, bars])
    signals = night.select("symbol_id", "ts", pl.lit(0.1).alias("size"))
    result = run_backtest(all_bars, signals, settings())
    fill = result.trades.filter(pl.col("kind") == "fill").row(0, named=True)
    assert fill["ts"] == bars["ts"][0]  # the first in-session bar
    halted = run_backtest(bars, bars.head(1).select("symbol_id", "ts", pl.lit(0.1).alias("size")), settings())
    assert halted.trades["ts"][0] == bars["ts"][3]  # bars 1 and 2 halted (no volume)


def test_costs_by_hand():
    days = [[100.0] * 5, [101.0, 102.0], [99.0] * 3, [100.0, 100.0]]
    vols = [20_000.0, 30_000.0, 10_000.0, 1_000.0]
    bars = pl.concat(
        [
            minute_bars(c, volume=v, start=OPEN + timedelta(days=k))
            for k, (c, v) in enumerate(zip(days, vols, strict=True))
        ]
    )
    day4 = bars.filter(pl.col("ts") > OPEN + timedelta(days=3))
    signals = day4.head(1).select("symbol_id", "ts", pl.lit(0.4).alias("size"))
    cfg = settings().model_copy(
        update={"costs": BacktestCosts(fee_bps=3.0, half_spread_bps=5.0, slippage="sqrt", slippage_k=0.7)}
    )
    result = run_backtest(bars, signals, cfg)
    fill = result.trades.filter(pl.col("kind") == "fill").row(0, named=True)
    q = 0.4 * 1_000_000 / 100.0
    adv = (5 * 20_000 + 2 * 30_000 + 3 * 10_000) / 3  # mean volume of the three past sessions
    sigma = np.std([math.log(102 / 100), math.log(99 / 102)], ddof=1)  # past daily log returns
    slip = 0.7 * sigma * math.sqrt(q / adv)  # square-root impact
    assert fill["qty"] == pytest.approx(q)
    assert fill["fee"] == pytest.approx(3e-4 * q * 100.0)
    assert fill["spread_cost"] == pytest.approx(5e-4 * q * 100.0)
    assert fill["slippage_cost"] == pytest.approx(slip * q * 100.0)
    assert fill["fill_price"] == pytest.approx(100.0 * (1 + 5e-4 + slip), rel=1e-12)
    nav = result.equity["nav"].to_numpy()
    assert nav[-1] == pytest.approx(1_000_000 - q * 100.0 * (5e-4 + slip) - 3e-4 * q * 100.0, rel=1e-12)
