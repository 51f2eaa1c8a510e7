"""Oracle: on identical signals, prices and fees the engine's equity equals backtesting.py's (GOOG daily)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from backtesting import Backtest, Strategy

from backtest.engine import run_backtest


def sma_targets(close: np.ndarray) -> np.ndarray:
    """Signed target units from a 10/30 SMA spread: flips, partial reductions and adds."""
    fast = np.convolve(close, np.ones(10) / 10)[: len(close)]
    slow = np.convolve(close, np.ones(30) / 30)[: len(close)]
    units = np.clip(np.round((fast - slow) / slow * 2000.0), -120, 120)
    units[:30] = 0.0
    return units


def run_backtesting_py(goog_pandas, units: np.ndarray, commission: float) -> np.ndarray:
    class Follow(Strategy):
        def init(self):
            pass

        def next(self):
            i = len(self.data) - 1
            delta = int(units[i]) - self.position.size
            if delta > 0:
                self.buy(size=delta)
            elif delta < 0:
                self.sell(size=-delta)

    bt = Backtest(goog_pandas, Follow, cash=1_000_000, commission=commission, spread=0.0, finalize_trades=False)
    stats = bt.run()
    return stats["_equity_curve"]["Equity"].to_numpy()


@pytest.mark.parametrize("fee_bps", [0.0, 2.0, 15.0])
def test_equity_equals_backtesting_py(goog_pandas, goog_bars, frictionless, fee_bps):
    units = sma_targets(goog_bars["close"].to_numpy())
    # backtesting.py calls next() from the second bar on: no order is placed on the first
    signals = goog_bars.select("symbol_id", "ts", pl.Series("units", units)).slice(1)
    ours = run_backtest(goog_bars, signals, frictionless(fee_bps=fee_bps), target="units")
    theirs = run_backtesting_py(goog_pandas, units, fee_bps * 1e-4)
    nav = ours.equity["nav"].to_numpy()
    assert len(nav) == len(theirs)
    assert ours.trades.filter(pl.col("kind") == "fill").height > 100
    np.testing.assert_allclose(np.diff(nav), np.diff(theirs), rtol=0, atol=1e-9)  # per-bar P&L
    np.testing.assert_allclose(nav, theirs, rtol=1e-13, atol=0)  # summation order: ~1e-15 relative
