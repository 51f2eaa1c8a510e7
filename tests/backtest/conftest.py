"""Backtest fixtures: GOOG daily bars as backtesting.py ships them, stamped like silver bars."""

from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl
import pytest

from core.strategy import BacktestCosts, BacktestGuards, BacktestSettings
from lakehouse.calendars import session_close


@pytest.fixture(scope="session")
def goog_pandas(shared_data) -> pd.DataFrame:
    """GOOG daily OHLCV (2004-08-19..2013-03-01, unadjusted) from ../shared/data/backtesting."""
    path = shared_data / "backtesting" / "GOOG.csv"
    if not path.exists():
        pytest.skip(f"{path} not found")
    return pd.read_csv(path, index_col=0, parse_dates=True)


@pytest.fixture(scope="session")
def goog_bars(goog_pandas) -> pl.DataFrame:
    """The same bars as silver holds them: symbol_id, ts = the XNYS session close (UTC ns), OHLCV."""
    days = pl.Series("d", goog_pandas.index.to_numpy(dtype="datetime64[ns]")).cast(pl.Date)
    return pl.DataFrame(
        {
            "symbol_id": "GOOG:US",
            "ts": session_close("XNYS", days),
            **{
                c.lower(): goog_pandas[c].to_numpy(dtype=np.float64) for c in ("Open", "High", "Low", "Close", "Volume")
            },
        }
    )


@pytest.fixture(scope="session")
def frictionless():
    """Factory: settings whose guards never bind, with the given costs (none by default)."""
    return _frictionless


def _frictionless(**costs) -> BacktestSettings:
    base = {"fee_bps": 0.0, "half_spread_bps": 0.0, "slippage": "none"} | costs
    return BacktestSettings(
        initial_cash=1_000_000.0,
        costs=BacktestCosts(**base),
        guards=BacktestGuards(max_nav_frac=1e9, max_adv_share=1e9, max_intraday_drawdown=1.0),
        calendar="XNYS",
    )
