"""Futures rolls: a position held through the ES Dec-13 -> Mar-14 roll (real LEAN bars) earns the rolled P&L."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
import pytest

from backtest.engine import run_backtest
from core.errors import ConfigError
from lakehouse.futures_continuous import continuous_series, roll_prices
from lakehouse.futures_roll import roll_schedule
from lakehouse.sources.lean_reference import Params, batches

MULT, UNITS, ROLL_BPS = 50.0, 3.0, 2.0
END = datetime(2014, 3, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def es_daily(shared_data):
    params = Params(
        root=shared_data / "lean",
        equities=False,
        futures=["cme/es"],
        kinds=["trade", "openinterest"],
        resolutions=["daily"],
    )
    frames: dict[str, list[pl.DataFrame]] = {}
    for b in batches(params):
        for c in b.chunks:
            frames.setdefault(c.table.name, []).append(c.data.drop("_row", "_raw", strict=False))
    bars, oi, contracts = (pl.concat(frames[k]) for k in ("bars", "open_interest", "futures_contracts"))
    series = {
        m: continuous_series(bars, oi, contracts, "open_interest", m, tf="1d").filter(pl.col("ts") < END)
        for m in ("none", "panama")
    }
    trade = bars.filter(pl.col("kind") == "trade")
    sched = roll_schedule(contracts, "open_interest", open_interest=oi, bars=trade)
    roll = roll_prices(trade, sched).filter(pl.col("contract") == "ESH14:CME").row(0, named=True)
    return series, roll


def hold(series: pl.DataFrame, method: str, frictionless):
    signals = series.head(1).select("symbol_id", "ts", pl.lit(UNITS).alias("units"))
    settings = frictionless(roll_cost_bps=ROLL_BPS).model_copy(update={"calendar": None})
    return run_backtest(
        series, signals, settings, target="units", multipliers={"ES:CME": MULT}, futures_method={"ES:CME": method}
    )


@pytest.mark.parametrize("method", ["panama", "none"])
def test_rolled_position_pnl(es_daily, frictionless, method):
    series, roll = es_daily
    raw = series["none"]
    assert raw.filter("roll")["contract"].to_list() == ["ESH14:CME"]
    result = hold(series[method], method, frictionless)
    nav = result.equity["nav"].to_numpy()
    rolls = result.trades.filter(pl.col("kind") == "roll")
    assert rolls.height == 1 and rolls["qty"][0] == UNITS
    at = raw.filter("roll").row(0, named=True)
    roll_open = series[method].filter(pl.col("ts") == at["ts"])["open"][0]
    cost = ROLL_BPS * 1e-4 * UNITS * MULT * roll_open
    assert rolls["fee"][0] == pytest.approx(cost, rel=1e-12)
    old = raw.filter(pl.col("contract") == "ESZ13:CME")
    start_close, end_close = old["close"][1], raw["close"][-1]  # filled at bar 1's open; P&L from its close
    if method == "panama":  # back-adjusted: sold old at p_old, bought new at p_new, at the roll instant
        legs = (roll["p_old"] - start_close) + (end_close - roll["p_new"])
    else:  # unadjusted: old marked to its last close, new entered at its first open
        legs = (old["close"][-1] - start_close) + (end_close - at["open"])
    assert nav[-1] - nav[1] == pytest.approx(UNITS * MULT * legs - cost, abs=1e-6)


def test_ratio_series_is_refused(es_daily, frictionless):
    series, _ = es_daily
    with pytest.raises(ConfigError, match="panama"):
        run_backtest(
            series["none"],
            series["none"].head(1).select("symbol_id", "ts", pl.lit(1.0).alias("units")),
            frictionless(),
            target="units",
            futures_method={"ES:CME": "ratio"},
        )
