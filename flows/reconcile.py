"""Reconcile bronze vendors into silver over one window: consensus bars, gated, adjusted, and freshness.

Thin flow: read bronze trades, quotes (for vendors with no trades) and vendor bars of the window
(from early enough that every 1h/1d bar ending in it is complete), the vendor stats known at the
window start, the corporate actions known at its end and earlier silver bars (the gate's warm-up);
then pure functions: ``reconcile_window`` (consensus), the quality gate (failing bars go to
bronze.quarantine, the rest on), ``adjusted_for`` (split/dividend-adjusted rows) and
``freshness`` (per symbol and source, at the window end). Writes replace the window's rows
(``Lake.replace_window`` / upserts keyed on the window), and the gate runs under a run id and clock
derived from the window, so re-running a window leaves silver, quarantine and quality results
unchanged.

Without ``start``/``end`` the window is the ``lookback_minutes`` before the run's scheduled start
(``prefect.runtime``). With ``catch_up`` (what the scheduled deployment runs) the window is the span
bronze holds that silver has not reconciled yet (``flows.watermarks.reconcile_window``); a run with
nothing new writes nothing.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

import polars as pl
import pyarrow.compute as pc
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from core.profile import load_profile
from flows.watermarks import reconcile_window as catch_up_window
from flows.watermarks import scheduled_start
from lakehouse import freshness as fr
from lakehouse.predicates import Predicate, between, eq, where
from lakehouse.quality.gate import GateResult, gate
from lakehouse.reconcile.pipeline import (
    ReconcileConfig,
    Reconciled,
    preferred_vendor_bars,
    reconcile_window,
    ticks_with_mid_fallback,
)
from lakehouse.reconcile.window import (
    adjusted_for,
    distinct_actions,
    history_filter,
    read_from,
    resolve_window,
    splits_of,
)
from lakehouse.security_master import all_instruments
from lakehouse.storage import Lake, ts_value
from lakehouse.tables import (
    BRONZE_BARS,
    BRONZE_CORPORATE_ACTIONS,
    BRONZE_QUOTES,
    BRONZE_TRADES,
    SILVER_BARS,
    SILVER_CLOCK_OFFSETS,
    SILVER_FRESHNESS,
    SILVER_VENDOR_STATS,
)

BAR_ORDER = ["symbol_id", "tf", "adjustment", "ts"]


def _symbols(expr: pc.Expression, symbols: list[str] | None) -> pc.Expression:
    return expr & pc.field("symbol_id").isin(symbols) if symbols else expr


def run_id(start: datetime, end: datetime, timeframes: list[str], symbols: list[str] | None) -> str:
    """A deterministic id for one window's gate run (the same window and scope: the same id)."""
    scope = hashlib.sha256(f"{sorted(timeframes)}|{sorted(symbols or [])}".encode()).hexdigest()[:8]
    return f"reconcile-{start:%Y%m%dT%H%M%S}-{end:%Y%m%dT%H%M%S}-{scope}"


@task(cache_policy=NO_CACHE)
def read_inputs(
    lake: Lake, start: datetime, end: datetime, symbols: list[str] | None, since: datetime | None = None
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Bronze ticks (trades, else quote mids) and vendor bars in ``[since or start, end]``; stats known at start."""
    flt = _symbols((pc.field("ts") >= ts_value(since or start)) & (pc.field("ts") <= ts_value(end)), symbols)
    trades = lake.read(BRONZE_TRADES, ["source", "symbol_id", "ts", "price", "size"], flt)
    quotes = lake.read(BRONZE_QUOTES, ["source", "symbol_id", "ts", "bid", "ask"], flt)
    ticks = ticks_with_mid_fallback(trades, quotes)
    bars = preferred_vendor_bars(lake.read(BRONZE_BARS, filter=flt & pc.field("kind").isin(["trade", "mid"])))
    stats = lake.read(SILVER_VENDOR_STATS, filter=pc.field("known_at") <= ts_value(start))
    return ticks, bars, stats


@task(cache_policy=NO_CACHE)
def read_context(
    lake: Lake, start: datetime, end: datetime, timeframes: list[str], symbols: list[str] | None
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Earlier raw silver bars (the gate's warm-up) and the corporate actions known at ``end``."""
    history = lake.read(SILVER_BARS, filter=history_filter(start, timeframes, symbols))
    actions = lake.read(BRONZE_CORPORATE_ACTIONS, filter=_symbols(pc.field("known_at") <= ts_value(end), symbols))
    return history, distinct_actions(actions)


@task(cache_policy=NO_CACHE)
def gate_bars(
    lake: Lake, bars: pl.DataFrame, history: pl.DataFrame, actions: pl.DataFrame, gate_run: str, end: datetime
) -> tuple[pl.DataFrame, GateResult]:
    """Run the silver.bars suite; failing bars go to bronze.quarantine; return the passing bars and the result."""
    return gate(
        lake, SILVER_BARS, bars.sort(BAR_ORDER), gate_run, lambda: end, history=history, splits=splits_of(actions)
    )


@task(cache_policy=NO_CACHE)
def read_freshness(lake: Lake, end: datetime, symbols: list[str] | None) -> pl.DataFrame:
    """silver.freshness rows at ``end`` from the last bronze observation of every (symbol, source)."""
    seen = fr.last_seen(lake, end)
    if symbols:
        seen = seen.filter(pl.col("symbol_id").is_in(symbols))
    if seen.height == 0:
        return pl.DataFrame(schema=pl.DataFrame(SILVER_FRESHNESS.schema.empty_table()).schema)
    return fr.freshness(seen, end).select(SILVER_FRESHNESS.column_names)


@task(cache_policy=NO_CACHE)
def write_outputs(
    lake: Lake,
    result: Reconciled,
    start: datetime,
    end: datetime,
    timeframes: list[str],
    symbols: list[str] | None,
    adjusted: pl.DataFrame | None = None,
    fresh: pl.DataFrame | None = None,
) -> dict[str, int]:
    """Replace the window's rows of silver.bars (raw, adjusted), vendor_stats and clock_offsets; upsert freshness."""
    lo, hi = ts_value(start), ts_value(end)
    only: Predicate = where(symbol_id=list(symbols) if symbols else None)
    bars_pred = where(tf=list(timeframes)) & between("ts", lo, hi, closed="right") & only
    meta_pred = eq("window_end", hi) & only
    out = {
        "silver.bars": lake.replace_window(SILVER_BARS, result.bars, bars_pred & eq("adjustment", "raw")),
        "silver.vendor_stats": lake.replace_window(SILVER_VENDOR_STATS, result.vendor_stats, meta_pred)
        if result.vendor_stats.height
        else 0,
        "silver.clock_offsets": lake.replace_window(SILVER_CLOCK_OFFSETS, result.clock_offsets, meta_pred),
    }
    if adjusted is not None:
        out["silver.bars.adjusted"] = lake.replace_window(
            SILVER_BARS, adjusted, bars_pred & eq("adjustment", "adjusted")
        )
    if fresh is not None and fresh.height:
        fr.write_freshness(lake, fresh)
        out["silver.freshness"] = fresh.height
    return out


@flow(name="reconcile")
def reconcile(
    start: datetime | None = None,
    end: datetime | None = None,
    timeframes: list[str] = ["1m", "1h", "1d"],
    symbols: list[str] | None = None,
    lake_root: str | None = None,
    profile: str = "local",
    lookback_minutes: int = 15,
    catch_up: bool = False,
) -> dict[str, int]:
    """Reconcile every vendor of ``(start, end]`` into silver; return rows written per table.

    Without ``end`` the window ends at the run's scheduled start (to the minute); without
    ``start`` it begins ``lookback_minutes`` earlier. With ``catch_up`` and no bounds, the window is
    what bronze holds beyond silver's last bar (empty: nothing to do).
    """
    logger = get_run_logger()
    lake = Lake.from_profile(load_profile(profile), root=lake_root)
    if catch_up and start is None and end is None:
        window = catch_up_window(lake, timeframes, symbols)
        if window is None:
            logger.info("silver is up to date with bronze: nothing to reconcile")
            return {}
        start, end = window
    start, end = resolve_window(start, end, lookback_minutes, scheduled_start() if end is None else end)
    ticks, bars, stats = read_inputs(lake, start, end, symbols, since=read_from(start, timeframes))
    history, actions = read_context(lake, start, end, timeframes, symbols)
    calendars = {i.symbol_id: i.calendar for i in all_instruments(lake)}
    result = reconcile_window(ticks, bars, calendars, start, end, stats, ReconcileConfig(timeframes=tuple(timeframes)))
    quarantined = 0
    if result.bars.height:  # an empty window (market closed) has nothing to gate
        result.bars, gated = gate_bars(
            lake, result.bars, history, actions, run_id(start, end, timeframes, symbols), end
        )
        quarantined = gated.rows_quarantined
        for line in gated.lines():
            (logger.warning if "FAILED" in line else logger.info)(line)
    adjusted = adjusted_for(result.bars, actions, end, reference=history)
    written = write_outputs(lake, result, start, end, timeframes, symbols, adjusted, read_freshness(lake, end, symbols))
    written["quarantined"] = quarantined
    logger.info("reconciled (%s, %s]: %s", start.isoformat(), end.isoformat(), written)
    return written
