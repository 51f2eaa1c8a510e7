"""Oracle: Sharpe, max drawdown, annual return and Calmar equal empyrical-reloaded's on the same returns."""

from __future__ import annotations

import empyrical
import numpy as np
import polars as pl
import pytest

from backtest import metrics
from backtest.engine import run_backtest


@pytest.fixture(scope="module")
def goog_daily(goog_bars, frictionless) -> metrics.Daily:
    close = goog_bars["close"].to_numpy()
    fast = np.convolve(close, np.ones(5) / 5)[: len(close)]
    slow = np.convolve(close, np.ones(20) / 20)[: len(close)]
    size = np.where(fast > slow, 0.8, -0.4)
    size[:20] = 0.0
    signals = goog_bars.select("symbol_id", "ts", pl.Series("size", size))
    result = run_backtest(goog_bars, signals, frictionless(fee_bps=1.0, half_spread_bps=2.0))
    return metrics.daily_series(result.equity, result.settings.initial_cash)


def test_metrics_equal_empyrical(goog_daily):
    r = goog_daily.ret
    assert np.std(r) > 0
    assert metrics.sharpe(r) == pytest.approx(empyrical.sharpe_ratio(r), rel=1e-12)
    assert metrics.max_drawdown(r) == pytest.approx(empyrical.max_drawdown(r), rel=1e-12)
    assert metrics.annual_return(r) == pytest.approx(empyrical.annual_return(r), rel=1e-12)
    assert metrics.calmar(r) == pytest.approx(empyrical.calmar_ratio(r), rel=1e-12)


def test_metrics_equal_empyrical_on_a_slice(goog_daily):
    r = goog_daily.ret[300:700]
    for ours, theirs in [
        (metrics.sharpe(r), empyrical.sharpe_ratio(r)),
        (metrics.max_drawdown(r), empyrical.max_drawdown(r)),
        (metrics.calmar(r), empyrical.calmar_ratio(r)),
    ]:
        assert ours == pytest.approx(theirs, rel=1e-12)


def test_hit_rate_profit_factor_exposure_by_hand():
    d = metrics.Daily(
        day=np.arange(5),
        ret=np.array([0.01, -0.02, 0.0, 0.03, -0.01]),
        pnl=np.array([10.0, -20.0, 0.0, 30.0, -10.0]),
        exposure=np.array([0.5, 0.5, 0.0, 1.0, 0.5]),
        turnover=np.array([0.5, 0.0, 0.5, 1.0, 0.0]),
        week=np.zeros(5),
    )
    m = metrics.compute(d)
    assert m["hit_rate"] == pytest.approx(2 / 4)
    assert m["profit_factor"] == pytest.approx(40 / 30)
    assert m["exposure"] == pytest.approx(0.5)
    assert m["turnover"] == pytest.approx(0.4 * 252)
