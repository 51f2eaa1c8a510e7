"""Reconcile bronze vendors into silver consensus bars over one window.

Thin flow: read bronze trades, quotes (for vendors with no trades) and vendor bars of the window,
the security master's calendars and the vendor stats known at the window start; call
``lakehouse.reconcile.pipeline.reconcile_window``; write silver.bars, silver.vendor_stats and
silver.clock_offsets with ``Lake.replace_window`` on predicates over the window (timestamps as
int64 ns), so re-running a window leaves silver unchanged.
"""

from __future__ import annotations

from datetime import datetime

import polars as pl
import pyarrow.compute as pc
from prefect import flow, task

from lakehouse.reconcile.pipeline import ReconcileConfig, quotes_as_ticks, reconcile_window
from lakehouse.security_master import load_instruments
from lakehouse.storage import Lake, ts_value
from lakehouse.tables import (BRONZE_BARS, BRONZE_QUOTES, BRONZE_TRADES, SILVER_BARS, SILVER_CLOCK_OFFSETS,
                              SILVER_VENDOR_STATS)
from mps.settings import load_profile

TS = pl.Datetime("ns", "UTC")


def _lake(lake_root: str | None, profile: str) -> Lake:
    return Lake(lake_root) if lake_root else Lake.from_profile(load_profile(profile))


def _window(start: datetime, end: datetime, symbols: list[str] | None) -> pc.Expression:
    expr = (pc.field("ts") >= ts_value(start)) & (pc.field("ts") < ts_value(end))
    return expr & pc.field("symbol_id").isin(symbols) if symbols else expr


@task
def read_inputs(lake: Lake, start: datetime, end: datetime, symbols: list[str] | None):
    """Bronze ticks (trades, else quote mids) and vendor bars of the window, and prior vendor stats."""
    flt = _window(start, end, symbols)
    trades = lake.read(BRONZE_TRADES, ["source", "symbol_id", "ts", "price", "size"], flt)
    quotes = lake.read(BRONZE_QUOTES, ["source", "symbol_id", "ts", "bid", "ask"], flt)
    mids = quotes_as_ticks(quotes).join(trades.select("source", "symbol_id").unique(), on=["source", "symbol_id"], how="anti")
    ticks = pl.concat([trades, mids.cast(trades.schema)])
    bars = lake.read(BRONZE_BARS, filter=flt & pc.field("kind").isin(["trade", "mid"]))
    bars = (bars.sort("kind", descending=True).unique(["source", "symbol_id", "tf", "ts"], keep="first")
            .with_columns(pl.col("ts").alias("last_ts"), pl.lit(None, TS).alias("arrival")))
    stats = lake.read(SILVER_VENDOR_STATS, filter=pc.field("known_at") <= ts_value(start))
    return ticks, bars, stats


@task
def write_outputs(lake: Lake, result, start: datetime, end: datetime, timeframes: list[str],
                  symbols: list[str] | None) -> dict[str, int]:
    """Replace the window's rows of silver.bars, vendor_stats and clock_offsets."""
    lo, hi = ts_value(start), ts_value(end)
    only = f" AND symbol_id IN ({', '.join(repr(s) for s in symbols)})" if symbols else ""
    tfs = ", ".join(repr(t) for t in timeframes)
    bars_pred = f"tf IN ({tfs}) AND adjustment = 'raw' AND ts > {lo} AND ts <= {hi}{only}"
    meta_pred = f"window_end = {hi}{only}"
    return {
        "silver.bars": lake.replace_window(SILVER_BARS, result.bars, bars_pred),
        "silver.vendor_stats": lake.replace_window(SILVER_VENDOR_STATS, result.vendor_stats, meta_pred)
        if result.vendor_stats.height else 0,
        "silver.clock_offsets": lake.replace_window(SILVER_CLOCK_OFFSETS, result.clock_offsets, meta_pred),
    }


@flow(name="reconcile")
def reconcile(start: datetime, end: datetime, timeframes: list[str] = ["1m", "1h", "1d"],
              symbols: list[str] | None = None, lake_root: str | None = None, profile: str = "local") -> dict[str, int]:
    """Reconcile every vendor of ``[start, end)`` into silver; return rows written per table."""
    lake = _lake(lake_root, profile)
    ticks, bars, stats = read_inputs(lake, start, end, symbols)
    calendars = {i.symbol_id: i.calendar for i in load_instruments()}
    result = reconcile_window(ticks, bars, calendars, start, end, stats,
                              ReconcileConfig(timeframes=tuple(timeframes)))
    return write_outputs(lake, result, start, end, timeframes, symbols)
