"""Reconcile one window: ticks and vendor bars in, consensus bars and vendor statistics out.

Order: (1) ticks reduced once to cells (``bars.tick_cells``) and screened for isolated prints;
(2) per-source 1-minute closes from the cells and vendor bars; (3) clock offsets detected on them
and corrected in the cells, the screen and the vendor bars; (4) tick-level latency on each
symbol's first hours; (5) per timeframe, session-aware bars per source (from the cells) and their
consensus, weighted by the vendor stats known at the window start; (6) vendor stats of this
window, from the finest timeframe's observations. Pure: no I/O, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import cast

import polars as pl

from core.timetypes import PL_TS
from lakehouse.reconcile.bars import (
    BAR_COLUMNS,
    GAP_SCHEMA,
    MINUTE_NS,
    TickCells,
    aggregate_bars,
    bars_from_cells,
    shift_cells,
    tick_cells,
)
from lakehouse.reconcile.clock_offset import OFFSET_SCHEMA, OffsetConfig, apply_offsets, detect_offsets
from lakehouse.reconcile.consensus import Consensus, ConsensusConfig, consensus
from lakehouse.reconcile.isolated_prints import PrintScreen, screen_prints
from lakehouse.reconcile.sessions import TIMEFRAMES, session_fit
from lakehouse.reconcile.vendor_stats import (
    LATENCY_SPAN_NS,
    estimate_latency,
    estimate_vendor_stats,
    weights_from_stats,
)
from lakehouse.schema import PL_TS as TS

TICK_COLUMNS = ["source", "symbol_id", "ts", "price", "size"]


@dataclass(frozen=True)
class ReconcileConfig:
    """What to reconcile and how (strict: frozen dataclass of frozen parts)."""

    timeframes: tuple[str, ...] = ("1m",)
    consensus: ConsensusConfig = ConsensusConfig()
    offsets: OffsetConfig = OffsetConfig()
    detect_offsets: bool = True
    reference: tuple[tuple[str, str], ...] = ()  # (symbol, source) pairs forcing the clock reference


@dataclass
class Reconciled:
    """Everything one window produces; ``bars`` go to silver.bars, the rest to their tables."""

    bars: pl.DataFrame
    vendor_stats: pl.DataFrame
    clock_offsets: pl.DataFrame
    gaps: pl.DataFrame
    outside: pl.DataFrame
    observations: dict[str, pl.DataFrame] = field(default_factory=dict)


def quotes_as_ticks(quotes: pl.DataFrame) -> pl.DataFrame:
    """Turn two-sided quotes into mid-price ticks of size 0 (for vendors that send only quotes)."""
    return quotes.filter(
        pl.col("bid").is_not_null() & pl.col("ask").is_not_null() & (pl.col("ask") >= pl.col("bid"))
    ).select(
        "source", "symbol_id", "ts", ((pl.col("bid") + pl.col("ask")) / 2).alias("price"), pl.lit(0.0).alias("size")
    )


def ticks_with_mid_fallback(trades: pl.DataFrame, quotes: pl.DataFrame) -> pl.DataFrame:
    """Every vendor's ticks: its trades, or quote mids for a (vendor, symbol) that sends no trades.

    A vendor that sends trades is never mixed with its own quotes (mids would add bid-ask noise to a
    trade record); one that sends only quotes still contributes a price path through its mids.
    """
    mids = quotes_as_ticks(quotes).join(
        trades.select("source", "symbol_id").unique(), on=["source", "symbol_id"], how="anti"
    )
    return pl.concat([trades, mids.cast(trades.schema)])


def preferred_vendor_bars(bars: pl.DataFrame) -> pl.DataFrame:
    """One vendor bar per (source, symbol, tf, ts): its trade bar where it sends both, else its mid bar.

    Trade bars are what silver reconciles; a mid bar (from a quote-only vendor) stands in only where no
    trade bar of the same vendor exists. Returns the bars with ``last_ts`` (= ts) and an empty
    ``arrival`` (vendor bars carry no arrival time).
    """
    return (
        bars.filter(pl.col("kind").is_in(["trade", "mid"]))
        .sort("kind", descending=True)
        .unique(["source", "symbol_id", "tf", "ts"], keep="first", maintain_order=True)
        .with_columns(pl.col("ts").alias("last_ts"), pl.lit(None, PL_TS).alias("arrival"))
    )


def _minute_closes(cells: TickCells | None, vendor_bars: pl.DataFrame) -> pl.DataFrame:
    frames = []
    if cells is not None and cells.frame.height:  # cells never straddle a minute: the latest cell holds the close
        frames.append(
            cells.frame.group_by("source", "symbol_id", (pl.col("first_ts") // MINUTE_NS).alias("_m"))
            .agg(pl.col("close").max_by("last_ts"))
            .select("source", "symbol_id", ((pl.col("_m") + 1) * MINUTE_NS).cast(TS).alias("ts"), "close")
        )
    if vendor_bars.height:
        frames.append(vendor_bars.filter(pl.col("tf") == "1m").select("source", "symbol_id", "ts", "close"))
    return (
        pl.concat(frames)
        if frames
        else pl.DataFrame(schema={"source": pl.String, "symbol_id": pl.String, "ts": TS, "close": pl.Float64})
    )


def _latency_ticks(ticks: pl.DataFrame, cells: TickCells, offsets: pl.DataFrame) -> pl.DataFrame:
    """Return the offset-corrected ticks ``estimate_latency`` reads: each symbol's first span, and a few more.

    Filters on the raw stamps first (widened by the largest offset), so only that span is shifted.
    """
    first = cast(int, cells.frame.group_by("symbol_id").agg(pl.col("first_ts").min())["first_ts"].max())
    worst = int(cast(int, offsets["offset_ns"].abs().max())) if offsets.height else 0
    sample = ticks.filter(pl.col("ts") < pl.lit(first + LATENCY_SPAN_NS + worst).cast(TS))
    return apply_offsets(sample, offsets)


def _source_bars(cells: TickCells | None, vendor_bars: pl.DataFrame, tf: str, calendars: dict[str, str]):
    parts: list[pl.DataFrame] = []
    gaps: list[pl.DataFrame] = []
    outside: list[pl.DataFrame] = []
    if cells is not None and cells.frame.height:
        built = bars_from_cells(cells, tf, calendars)
        parts.append(built.bars)
        gaps.append(built.gaps)
        outside.append(built.outside)
    if vendor_bars.height:
        exact = vendor_bars.filter(pl.col("tf") == tf)
        finer = exact.clear()
        length = TIMEFRAMES[tf]
        if length is None or length > 60_000_000_000:  # roll vendor minutes up
            have = exact.select("source", "symbol_id").unique()
            finer = vendor_bars.filter(pl.col("tf") == "1m").join(have, on=["source", "symbol_id"], how="anti")
        if exact.height + finer.height:
            rolled = aggregate_bars(pl.concat([exact, finer]), tf, calendars)
            parts.append(rolled.bars)
            gaps.append(rolled.gaps)
            outside.append(rolled.outside)
    bars = pl.concat(parts, how="vertical_relaxed") if parts else pl.DataFrame()
    return (
        bars,
        pl.concat(gaps, how="vertical_relaxed") if gaps else pl.DataFrame(schema=GAP_SCHEMA),
        pl.concat(outside, how="vertical_relaxed") if outside else pl.DataFrame(),
    )


def reconcile_window(
    ticks: pl.DataFrame,
    vendor_bars: pl.DataFrame,
    calendars: dict[str, str],
    window_start: datetime,
    window_end: datetime,
    prior_stats: pl.DataFrame | None = None,
    cfg: ReconcileConfig = ReconcileConfig(),
) -> Reconciled:
    """Reconcile ticks (``TICK_COLUMNS``) and vendor bars (``bars.BAR_COLUMNS``) of one window.

    Consensus bars whose END lies in ``(window_start, window_end]`` are returned. The window's
    stats are ``known_at = window_end`` (they use data up to its end).
    """
    ticks = (
        ticks.select(TICK_COLUMNS).with_columns(pl.col("ts").cast(TS))
        if ticks.height
        else pl.DataFrame(
            schema={"source": pl.String, "symbol_id": pl.String, "ts": TS, "price": pl.Float64, "size": pl.Float64}
        )
    )
    vendor_bars = vendor_bars.select(BAR_COLUMNS) if vendor_bars.height else pl.DataFrame()
    # every tick-level step reads the ticks once; the rest works on cells (see bars.tick_cells)
    cells = tick_cells(ticks, calendars, cfg.timeframes, (cfg.offsets.step_ns,)) if ticks.height else None
    screen = screen_prints(ticks, cfg.consensus.isolated_k, cfg.consensus.isolated_floor_bps)
    offsets = pl.DataFrame(schema=OFFSET_SCHEMA)
    if cfg.detect_offsets:
        closes = _minute_closes(cells, vendor_bars)
        fit = session_fit(closes, calendars)
        offsets = detect_offsets(closes, window_start, window_end, cfg.offsets, dict(cfg.reference), fit)
        offsets = offsets.filter(pl.col("offset_ns") != 0)
        if cells is not None:
            cells = shift_cells(cells, offsets)
        # a constant shift keeps each stream's order, so the screen of the raw ticks only needs its stamps moved
        screen = PrintScreen(screen.screened, apply_offsets(screen.isolated, offsets))
        if vendor_bars.height:
            vendor_bars = apply_offsets(vendor_bars, offsets, ("ts", "last_ts", "arrival"))
    latency = estimate_latency(_latency_ticks(ticks, cells, offsets)) if cells is not None else None
    weights = (
        weights_from_stats(prior_stats, window_start, cfg.consensus.eps_ms)
        if prior_stats is not None and prior_stats.height
        else None
    )
    lo, hi = pl.Series([window_start]).cast(TS).item(), pl.Series([window_end]).cast(TS).item()
    out_bars, out_gaps, out_outside, observations = [], [], [], {}
    for tf in cfg.timeframes:
        src, gaps, outside = _source_bars(cells, vendor_bars, tf, calendars)
        if src.height == 0:
            continue
        cons: Consensus = consensus(src, weights, cfg.consensus, screen.bars(tf, calendars), screen.screened)
        out_bars.append(cons.bars.filter(pl.col("ts") > lo, pl.col("ts") <= hi))
        out_gaps.append(gaps)
        if outside.height:
            out_outside.append(outside.with_columns(pl.lit(tf).alias("tf")))
        observations[tf] = cons.observations.filter(pl.col("ts") > lo, pl.col("ts") <= hi)
    bars = pl.concat(out_bars) if out_bars else consensus(pl.DataFrame()).bars
    finest = next((observations[tf] for tf in cfg.timeframes if tf in observations), None)
    stats = (
        estimate_vendor_stats(finest, window_start, window_end, window_end, latency)
        if finest is not None and finest.height
        else pl.DataFrame()
    )
    return Reconciled(
        bars,
        stats,
        offsets,
        pl.concat(out_gaps) if out_gaps else pl.DataFrame(schema=GAP_SCHEMA),
        pl.concat(out_outside) if out_outside else pl.DataFrame(),
        observations,
    )
