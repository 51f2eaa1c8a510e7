"""Golden run (seed 13): the same inputs give the same run id (pinned here), the same result hash run
after run, and the pinned figures.

The result hash is not pinned across machines: it hashes every float of the run cut to 29 mantissa
bits, and last-ulp differences between machines' math libraries, compounded over 2,000 bars, cross
a cut somewhere (the hash pinned on one machine read differently on another with every other
backtest test, P&L parity with backtesting.py included, passing). The figures below pin the run to
1e-9 relative instead. If an intended engine change moves them, bump ``ENGINE_VERSION`` in
backtest/engine.py and update the figures in the same commit, saying why.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from backtest.engine import run_backtest
from core.strategy import BacktestCosts, BacktestGuards, BacktestSettings

GOLDEN_RUN_ID = "d5e25a44538c2a9bf0d29542bd151aba"
GOLDEN_FIGURES = {
    "trades": 2150,
    "kills": 46,
    "final_nav": 1282659.088135273,
    "fees": 12116.732693926619,
    "spread": 24233.465387853237,
    "slippage": 36091.046745134096,
    "abs_qty": 309864.71031297994,
}
SETTINGS = BacktestSettings(
    initial_cash=1_000_000.0,
    costs=BacktestCosts(fee_bps=1.0, half_spread_bps=2.0, slippage="sqrt", slippage_k=1.0, adv_days=20),
    guards=BacktestGuards(max_nav_frac=0.5, max_adv_share=0.001, max_intraday_drawdown=0.02),
    calendar="XNYS",
)
VERSIONS = {"silver.bars": 7, "file:GOOG.csv": "backtesting==0.6.6"}


def golden(goog_bars: pl.DataFrame, settings: BacktestSettings = SETTINGS):
    close = goog_bars["close"].to_numpy()
    fast = np.convolve(close, np.ones(10) / 10)[: len(close)]
    slow = np.convolve(close, np.ones(40) / 40)[: len(close)]
    size = np.where(np.arange(len(close)) < 40, 0.0, np.clip((fast - slow) / slow * 8.0, -0.6, 0.6))
    signals = goog_bars.select("symbol_id", "ts", pl.Series("size", size))
    return run_backtest(goog_bars, signals, settings, data_versions=VERSIONS, model_version="sma-10-40")


def test_golden_run_hashes(goog_bars):
    first, second = golden(goog_bars), golden(goog_bars)
    assert (first.run_id, first.result_hash) == (second.run_id, second.result_hash)
    assert first.trades.height > 100 and first.kills.height > 0  # costs, caps and the kill switch all act
    assert first.trades["slippage_cost"].sum() > 0
    assert first.run_id == GOLDEN_RUN_ID
    t = first.trades
    figures = {
        "trades": t.height,
        "kills": first.kills.height,
        "final_nav": float(first.equity["nav"][-1]),
        "fees": float(t["fee"].sum()),
        "spread": float(t["spread_cost"].sum()),
        "slippage": float(t["slippage_cost"].sum()),
        "abs_qty": float(t["qty"].abs().sum()),
    }
    assert figures == pytest.approx(GOLDEN_FIGURES, rel=1e-9, abs=0)


def test_any_input_change_moves_the_run_id(goog_bars):
    base = golden(goog_bars)
    other = golden(goog_bars, SETTINGS.model_copy(update={"initial_cash": 2_000_000.0}))
    assert other.run_id != base.run_id and other.result_hash != base.result_hash
