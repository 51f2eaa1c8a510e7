"""An intraday backtest reports the Sharpe of its per-minute NAV returns with a block-bootstrap CI
beside the daily metrics (two sessions' daily returns give a range, not an interval); daily bars do not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl

from backtest.bootstrap import block_bootstrap_sharpe, period_returns
from backtest.engine import prepare
from backtest.evaluate import evaluate
from core.strategy import BacktestSettings

SETTINGS = BacktestSettings(calendar=None, bootstrap_draws=300)


def _bars(step: timedelta, per_day: int, days: int, seed: int = 1) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    start = datetime(2024, 3, 4, 14, 30, tzinfo=UTC)
    ts = [start + timedelta(days=d) + i * step for d in range(days) for i in range(per_day)]
    close = 50.0 * np.exp(np.cumsum(rng.normal(0, 4e-4, len(ts))))
    open_ = np.r_[50.0, close[:-1]]
    return pl.DataFrame(
        {
            "symbol_id": "AAA:US",
            "ts": ts,
            "open": open_,
            "high": np.maximum(open_, close) * 1.0001,
            "low": np.minimum(open_, close) * 0.9999,
            "close": close,
            "volume": 1e7,
        }
    ).with_columns(pl.col("ts").cast(pl.Datetime("ns", "UTC")))


def _targets(bars: pl.DataFrame, seed: int = 2) -> pl.DataFrame:
    sizes = np.random.default_rng(seed).choice([-0.5, 0.5], size=bars.height)
    return bars.select("symbol_id", "ts").with_columns(pl.Series("size", sizes))


def test_intraday_run_reports_per_minute_sharpe_with_a_ci():
    bars = _bars(timedelta(minutes=1), 390, 2)
    ev = evaluate(prepare(bars, _targets(bars), SETTINGS), SETTINGS, with_what_if=False)
    row = ev.metrics.filter(pl.col("metric") == "sharpe_per_minute")
    assert row.height == 1 and row["n_clusters"][0] > 500
    lo, value, hi = row["lo"][0], row["value"][0], row["hi"][0]
    assert np.isfinite(lo) and lo < value < hi and hi - lo > 1.0  # an interval, not a point
    ret, per_session = period_returns(ev.result.equity)
    expected = block_bootstrap_sharpe(ret, 252 * per_session, 300, SETTINGS.ci_level, SETTINGS.bootstrap_seed)
    assert (value, lo, hi) == expected[:3]  # the promotion gate's figure


def test_daily_bars_have_no_per_minute_row():
    bars = _bars(timedelta(days=1), 1, 60)
    ev = evaluate(prepare(bars, _targets(bars), SETTINGS), SETTINGS, with_what_if=False)
    assert "sharpe_per_minute" not in ev.metrics["metric"].to_list()
    assert "sharpe" in ev.metrics["metric"].to_list()
