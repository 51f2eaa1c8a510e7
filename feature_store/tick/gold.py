"""tick_v2 between the lake's layers: bronze trades/quotes of one source in, gold.features rows out.

``build_tick_features`` is idempotent per window (it replaces the (feature set, symbols, ts range)
window of gold.features), so a featurize flow can re-run any day.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import polars as pl
import pyarrow.compute as pc

from feature_store.gold import write_features
from feature_store.tick.batch import tick_features
from feature_store.tick.events import DEFAULT_CALENDAR
from lakehouse.storage import Lake, ts_value
from lakehouse.tables import BRONZE_QUOTES, BRONZE_TRADES


def bronze_window(
    lake: Lake, source: str, symbols: list[str] | None, start: datetime, end: datetime
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Trades and quotes of one source in ``[start, end)`` (optionally some symbols) from bronze."""
    out = []
    for spec in (BRONZE_TRADES, BRONZE_QUOTES):
        if not lake.exists(spec):
            out.append(pl.DataFrame())
            continue
        flt = (pc.field("source") == source) & (pc.field("ts") >= ts_value(start)) & (pc.field("ts") < ts_value(end))
        if symbols:
            flt &= pc.field("symbol_id").isin(symbols)
        out.append(lake.read(spec, filter=flt))
    return out[0], out[1]


def build_tick_features(
    lake: Lake,
    source: str,
    start: datetime,
    end: datetime,
    symbols: list[str] | None = None,
    calendar_of: Mapping[str, str] | str = DEFAULT_CALENDAR,
) -> int:
    """Compute tick_v2 for ``[start, end)`` from one source's bronze ticks and write gold.features; return rows."""
    trades, quotes = bronze_window(lake, source, symbols, start, end)
    if trades.height == 0:
        return 0
    features = tick_features(trades, quotes if quotes.height else None, calendar_of)
    return write_features(lake, features)
