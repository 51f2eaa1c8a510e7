"""What one reconcile run covers: its window, the span of data to read, and what it derives beside raw bars.

Pure helpers for ``flows/reconcile.py`` (times come in as parameters, nothing reads a clock):
- ``resolve_window``: explicit ``start``/``end``, or a rolling window of ``lookback_minutes`` ending at
  the run's scheduled time (floored to the minute, so a cron run at 10:15:00.4 covers (10:00, 10:15]);
- ``read_from``: how far before ``start`` inputs are read, so a 1h or 1d bar ending in the window is
  built from all of its prints, not only those of the last 15 minutes;
- ``history_filter``: the earlier silver bars that warm up the quality gate's rolling baselines;
- ``adjusted_for``: adjusted bars for the symbols with corporate actions known at the window end.
  Symbols with no known action get no adjusted rows (their raw bars are the adjusted ones); a
  symbol that has any gets adjusted rows for every bar, even where the factors are 1, so its
  adjusted series has no holes. Adjusted rows use the actions known at the window's end: an
  action learnt later reaches earlier bars when their windows are reconciled again.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pyarrow.compute as pc

from core.errors import ConfigError
from lakehouse.adjust import adjusted_bars
from lakehouse.corporate_actions import known_actions
from lakehouse.reconcile.sessions import tf_ns
from lakehouse.storage import ts_value

DAY = timedelta(days=1)
# calendar days of earlier silver bars the gate sees per timeframe (>= its 50-bar jump and volume windows)
HISTORY_DAYS = {"1s": 1, "1m": 4, "5m": 10, "15m": 20, "1h": 30, "1d": 100}


def utc(value: datetime) -> datetime:
    """Return ``value`` as an aware UTC datetime (naive means UTC)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def resolve_window(
    start: datetime | None, end: datetime | None, lookback_minutes: int, scheduled: datetime
) -> tuple[datetime, datetime]:
    """Return (start, end): given bounds win; a missing end is ``scheduled`` floored to the minute."""
    if lookback_minutes <= 0:
        raise ConfigError(f"reconcile: lookback_minutes must be > 0, got {lookback_minutes}")
    end = utc(end) if end is not None else utc(scheduled).replace(second=0, microsecond=0)
    start = utc(start) if start is not None else end - timedelta(minutes=lookback_minutes)
    if start >= end:
        raise ConfigError(f"reconcile: window start {start.isoformat()} is not before end {end.isoformat()}")
    return start, end


def read_from(start: datetime, timeframes: list[str]) -> datetime:
    """Return where reading starts so every bar ending after ``start`` is complete (a day for "1d")."""
    longest = max(tf_ns(tf) or 86_400_000_000_000 for tf in timeframes)
    return start - timedelta(microseconds=longest // 1000)


def history_filter(start: datetime, timeframes: list[str], symbols: list[str] | None) -> pc.Expression:
    """Return the filter of the raw silver bars before ``start`` that warm up the gate."""
    expr = None
    for tf in timeframes:
        lo = start - timedelta(days=HISTORY_DAYS.get(tf, 30))
        part = (pc.field("tf") == tf) & (pc.field("ts") > ts_value(lo))
        expr = part if expr is None else expr | part
    expr = expr & (pc.field("ts") <= ts_value(start)) & (pc.field("adjustment") == "raw")
    return expr & pc.field("symbol_id").isin(symbols) if symbols else expr


def distinct_actions(actions: pl.DataFrame) -> pl.DataFrame:
    """Keep one action per (symbol, ex_date, kind) when several vendors deliver it: the first known."""
    if actions.height == 0:
        return actions
    return actions.sort("known_at", "source").unique(
        ["symbol_id", "ex_date", "kind"], keep="first", maintain_order=True
    )


def splits_of(actions: pl.DataFrame) -> pl.DataFrame:
    """The (symbol_id, ex_date, ratio) of the splits, for the gate's jump check on raw bars."""
    schema = {"symbol_id": pl.String, "ex_date": pl.Date, "ratio": pl.Float64}
    if actions.height == 0:
        return pl.DataFrame(schema=schema)
    return actions.filter(pl.col("kind") == "split").select(schema.keys()).cast(pl.Schema(schema))


def adjusted_for(
    raw: pl.DataFrame, actions: pl.DataFrame, as_of: datetime, reference: pl.DataFrame | None = None
) -> pl.DataFrame:
    """Return adjusted silver bars for the raw bars of symbols with an action known at ``as_of``."""
    known = known_actions(distinct_actions(actions), as_of) if actions.height else actions
    symbols = known.get_column("symbol_id").unique().to_list() if known.height else []
    bars = raw.filter(pl.col("symbol_id").is_in(symbols))
    if bars.height == 0:
        return raw.clear()
    ref = None
    if reference is not None and reference.height:
        ref = pl.concat([reference.select("symbol_id", "ts", "close"), bars.select("symbol_id", "ts", "close")])
    return adjusted_bars(bars, known, as_of=as_of, reference=ref).select(raw.columns)
