"""Per-source bars from trades (or from finer vendor bars), aware of trading sessions.

A bar is stamped at its END and holds OHLCV, VWAP, the trade count and ``last_ts`` (the last
trade in it, used for staleness). Trades outside every session of the symbol's calendar make no
bar; they are counted in ``outside``. Slots of an open session with no trade are reported in
``gaps`` (runs of missing bars), never filled here.

Ticks are reduced once to cells (``tick_cells``): per (source, symbol), one partial bar per granule
of time, where the granule divides every bar length and every session boundary, so no cell
straddles a bar; a stamp exactly on a granule boundary gets a cell of its own, because a session
close is inclusive. All session logic then runs on the cells (a few per minute instead of
thousands of ticks), and one reduction serves every timeframe. Ties in time are broken by input
order: a bar opens at the first of its earliest prints and closes at the first of its latest.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import cast

import polars as pl
from polars._typing import SchemaDict

from lakehouse.reconcile.sessions import calendar_column, locate, session_table, slot_exprs, tf_ns
from lakehouse.schema import MINUTE_NS
from lakehouse.schema import PL_TS as TS

BAR_COLUMNS = (
    "source",
    "symbol_id",
    "tf",
    "ts",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "vwap",
    "n_trades",
    "last_ts",
    "arrival",
)
BAR_SCHEMA: SchemaDict = {
    "source": pl.String,
    "symbol_id": pl.String,
    "tf": pl.String,
    "ts": TS,
    "open": pl.Float64,
    "high": pl.Float64,
    "low": pl.Float64,
    "close": pl.Float64,
    "volume": pl.Float64,
    "vwap": pl.Float64,
    "n_trades": pl.Int64,
    "last_ts": TS,
    "arrival": TS,
}
GAP_SCHEMA: SchemaDict = {
    "source": pl.String,
    "symbol_id": pl.String,
    "tf": pl.String,
    "start": TS,
    "end": TS,
    "n_bars": pl.Int64,
}
OUTSIDE_SCHEMA: SchemaDict = {
    "source": pl.String,
    "symbol_id": pl.String,
    "n_trades": pl.Int64,
    "first_ts": TS,
    "last_ts": TS,
}
SLICE_ROWS = 4_000_000  # ticks reduced per pass: bounds the memory of the intermediate columns
_ORDER_LIMIT = 1 << 62  # tie-break keys (offset in cell * rows + row) must stay below this


@dataclass(frozen=True)
class SourceBars:
    """Bars per (source, symbol, tf, ts), the missing-bar runs, and trades outside any session."""

    bars: pl.DataFrame
    gaps: pl.DataFrame
    outside: pl.DataFrame


@dataclass(frozen=True)
class TickCells:
    """Ticks reduced to partial bars per (source, symbol_id, pos); ``granule_ns`` is the cell length.

    ``pos`` (int ns) is the cell's boundary for a cell of stamps exactly on it, else a point
    strictly inside the cell; ``first_ts``/``last_ts`` (int ns) are its earliest and latest stamps.
    """

    frame: pl.DataFrame
    granule_ns: int
    ts_dtype: pl.DataType = TS  # the ticks' own ``ts`` type, kept by ``outside``


def _granule(lengths: Iterable[int], n_rows: int) -> int:
    g = math.gcd(MINUTE_NS, *lengths)
    for finer in (1_000_000_000, 1_000_000, 1_000, 1):
        if g * (n_rows + 1) < _ORDER_LIMIT:
            break
        g = math.gcd(g, finer)
    return g


def _reduce(trades: pl.DataFrame, granule: int) -> pl.DataFrame:
    """Aggregate ticks into cells of ``granule`` ns, a slice of rows at a time, then merge the slices."""
    n, g = trades.height, granule
    has_arrival = "received_ts" in trades.columns
    t, rel, row = pl.col("_t"), pl.col("_rel"), pl.col("_r")
    parts = []
    for offset in range(0, n, SLICE_ROWS):
        stamp = pl.col("ts").cast(TS).dt.epoch("ns")
        part = (
            trades.slice(offset, SLICE_ROWS)
            .lazy()
            .with_row_index("_r", offset)
            .select(
                "source",
                "symbol_id",
                "price",
                "size",
                stamp.alias("_t"),
                (stamp - stamp // g * g).alias("_rel"),  # floor
                row.cast(pl.Int64),
                *([pl.col("received_ts").cast(TS).alias("_arr")] if has_arrival else []),
            )
        )
        parts.append(
            part.select(
                "source",
                "symbol_id",
                "price",
                "size",
                "_t",
                *(["_arr"] if has_arrival else []),
                (t - rel + (rel > 0).cast(pl.Int64)).alias("pos"),
                # the first of the earliest prints and the first of the latest: order by (stamp, row)
                (rel * n + row).alias("_first"),
                (rel * n + (n - 1 - row)).alias("_last"),
                (pl.col("price") * pl.col("size")).alias("_pv"),
            )
            .group_by("source", "symbol_id", "pos")
            .agg(
                t.min().alias("first_ts"),
                t.max().alias("last_ts"),
                pl.col("price").min_by("_first").alias("open"),
                pl.col("_first").min(),
                pl.col("price").max().alias("high"),
                pl.col("price").min().alias("low"),
                pl.col("price").max_by("_last").alias("close"),
                pl.col("_last").max(),
                pl.col("size").sum().alias("volume"),
                pl.col("_pv").sum(),
                pl.len().cast(pl.Int64).alias("n_trades"),
                (pl.col("_arr").max() if has_arrival else pl.lit(None, TS)).alias("arrival"),
            )
            .collect()
        )
    cells = (
        parts[0]
        if len(parts) == 1
        else pl.concat(parts)
        .group_by("source", "symbol_id", "pos", maintain_order=True)
        .agg(
            pl.col("first_ts").min(),
            pl.col("last_ts").max(),
            pl.col("open").min_by("_first"),
            pl.col("high").max(),
            pl.col("low").min(),
            pl.col("close").max_by("_last"),
            pl.col("volume").sum(),
            pl.col("_pv").sum(),
            pl.col("n_trades").sum(),
            pl.col("arrival").max(),
        )
    )
    # in time order: sums over a bar's cells then run in one fixed order (a re-run gives the same bits)
    return cells.drop("_first", "_last", strict=False).sort("source", "symbol_id", "pos")


def tick_cells(
    trades: pl.DataFrame, calendars: dict[str, str], timeframes: Iterable[str] = ("1m",), align_ns: Iterable[int] = ()
) -> TickCells:
    """Reduce trades (source, symbol_id, ts, price, size[, received_ts]) to cells for ``timeframes``.

    The granule divides one minute, every bar length, every ``align_ns`` (e.g. the step of clock
    offsets, so shifted cells stay aligned) and every session open and close of the symbols'
    calendars in the data's range.
    """
    lengths = [n for n in (tf_ns(tf) for tf in timeframes) if n] + [int(a) for a in align_ns]
    g = _granule(lengths, trades.height)
    cells = _reduce(trades, g)
    if cells.height:
        cal = calendar_column(cells, calendars)
        table = session_table(
            cal.unique().to_list(), cast(int, cells["first_ts"].min()), cast(int, cells["last_ts"].max())
        )
        fine = math.gcd(g, *table["open_ns"].to_list(), *table["close_ns"].to_list())
        if fine != g:  # a session boundary off the granule (none of the shipped calendars has one)
            g, cells = fine, _reduce(trades, fine)
    return TickCells(cells, g, trades.schema["ts"])


def shift_cells(cells: TickCells, offsets: pl.DataFrame) -> TickCells:
    """Shift each (source, symbol)'s cells by its ``offset_ns`` (a multiple of the granule)."""
    if offsets.height == 0 or cells.frame.height == 0:
        return cells
    shift = offsets.select("source", "symbol_id", pl.col("offset_ns").cast(pl.Int64))
    if (shift["offset_ns"] % cells.granule_ns != 0).any():
        raise ValueError(f"clock offsets must be multiples of the cell granule ({cells.granule_ns} ns)")
    out = cells.frame.join(shift, on=["source", "symbol_id"], how="left", maintain_order="left").with_columns(
        pl.col("offset_ns").fill_null(0)
    )
    return TickCells(
        out.with_columns(
            *[(pl.col(c) + pl.col("offset_ns")) for c in ("pos", "first_ts", "last_ts")],
            (pl.col("arrival").cast(TS).dt.epoch("ns") + pl.col("offset_ns")).cast(TS).alias("arrival"),
        ).drop("offset_ns"),
        cells.granule_ns,
        cells.ts_dtype,
    )


def _slots(frame: pl.DataFrame, pos_ns: pl.Series, tf: str, calendars: dict[str, str]) -> pl.DataFrame:
    cal = calendar_column(frame, calendars)
    table = session_table(cal.unique().to_list(), cast(int, pos_ns.min()), cast(int, pos_ns.max()))
    located = locate(pos_ns, cal, table)
    return frame.with_columns(cal, located["open_ns"], located["close_ns"], pos_ns.alias("_pos")).with_columns(
        slot_exprs(pl.col("_pos"), tf)
    )


def build_bars(trades: pl.DataFrame, tf: str, calendars: dict[str, str]) -> SourceBars:
    """Aggregate trades (source, symbol_id, ts, price, size[, received_ts]) into session bars.

    ``arrival`` is the latest ``received_ts`` of the bar's trades when the feed records arrival
    times, else null (the consensus then uses the vendor's estimated latency).
    """
    return bars_from_cells(tick_cells(trades, calendars, (tf,)), tf, calendars)


def bars_from_cells(cells: TickCells, tf: str, calendars: dict[str, str]) -> SourceBars:
    """Assemble session bars of ``tf`` from tick cells (``tick_cells``; its granule must divide ``tf``)."""
    if (tf_ns(tf) or cells.granule_ns) % cells.granule_ns:
        raise ValueError(f"cells of {cells.granule_ns} ns cannot make {tf} bars")
    frame = cells.frame
    if frame.height == 0:
        return SourceBars(
            pl.DataFrame(schema=BAR_SCHEMA),
            pl.DataFrame(schema=GAP_SCHEMA),
            pl.DataFrame(schema={**OUTSIDE_SCHEMA, "first_ts": cells.ts_dtype, "last_ts": cells.ts_dtype}),
        )
    placed = _slots(frame, frame.get_column("pos"), tf, calendars)
    inside = placed.filter(pl.col("open_ns").is_not_null())
    outside = (
        placed.filter(pl.col("open_ns").is_null())
        .group_by("source", "symbol_id")
        .agg(
            pl.col("n_trades").sum(),
            pl.col("first_ts").min().cast(TS).cast(cells.ts_dtype),
            pl.col("last_ts").max().cast(TS).cast(cells.ts_dtype),
        )
        .sort("source", "symbol_id")
    )
    bars = (
        inside.group_by("source", "symbol_id", "bar_end", "open_ns", "close_ns", "bar_idx", "n_bars")
        .agg(
            pl.col("open").min_by("first_ts"),
            pl.col("high").max(),
            pl.col("low").min(),
            pl.col("close").max_by("last_ts"),
            pl.col("volume").sum(),
            pl.col("_pv").sum(),
            pl.col("n_trades").sum(),
            pl.col("last_ts").max(),
            pl.col("arrival").max(),
        )
        .with_columns(pl.when(pl.col("volume") > 0).then(pl.col("_pv") / pl.col("volume")).alias("vwap"))
    )
    return SourceBars(_finish(bars, tf), _gaps(bars, tf, calendars), outside)


def aggregate_bars(bars: pl.DataFrame, tf: str, calendars: dict[str, str]) -> SourceBars:
    """Roll finer per-source bars (e.g. vendor 1m bars) up to ``tf`` inside sessions."""
    pos = bars.get_column("ts").cast(TS).dt.epoch("ns") - 1  # a bar stamped at its end covers (start, end]
    placed = _slots(bars.sort("ts"), pos.sort(), tf, calendars)
    inside = placed.filter(pl.col("open_ns").is_not_null())
    outside = (
        placed.filter(pl.col("open_ns").is_null())
        .group_by("source", "symbol_id")
        .agg(
            pl.col("n_trades").sum().cast(pl.Int64),
            pl.col("ts").min().alias("first_ts"),
            pl.col("ts").max().alias("last_ts"),
        )
        .sort("source", "symbol_id")
    )
    vol = pl.col("volume").fill_null(0)
    out = (
        inside.group_by(
            "source", "symbol_id", "bar_end", "open_ns", "close_ns", "bar_idx", "n_bars", maintain_order=True
        )
        .agg(
            pl.col("open").first(),
            pl.col("high").max(),
            pl.col("low").min(),
            pl.col("close").last(),
            vol.sum().alias("volume"),
            (pl.col("vwap").fill_null(pl.col("close")) * vol).sum().alias("_pv"),
            pl.col("n_trades").sum().cast(pl.Int64),
            pl.col("last_ts").max(),
            pl.col("arrival").max(),
        )
        .with_columns(pl.when(pl.col("volume") > 0).then(pl.col("_pv") / pl.col("volume")).alias("vwap"))
    )
    return SourceBars(_finish(out, tf), _gaps(out, tf, calendars), outside)


def _finish(bars: pl.DataFrame, tf: str) -> pl.DataFrame:
    return (
        bars.with_columns(
            pl.lit(tf).alias("tf"),
            pl.col("bar_end").cast(TS).alias("ts"),
            pl.col("arrival").cast(TS),
            pl.col("last_ts").cast(TS),
        )
        .select(BAR_COLUMNS)
        .sort("source", "symbol_id", "ts")
    )


def _gaps(bars: pl.DataFrame, tf: str, calendars: dict[str, str]) -> pl.DataFrame:
    """Return runs of bar slots with no bar, inside sessions between a source's first and last bar."""
    if bars.height == 0:
        return pl.DataFrame(schema=GAP_SCHEMA)
    length = tf_ns(tf) or 0
    keys = ["source", "symbol_id"]
    b = bars.select(*keys, "open_ns", "close_ns", "bar_idx", "n_bars").sort(*keys, "open_ns", "bar_idx")
    sess = ["source", "symbol_id", "open_ns"]
    inner = (
        b.with_columns(pl.col("bar_idx").shift(1).over(sess).fill_null(-1).alias("prev"))
        .filter(pl.col("bar_idx") - pl.col("prev") > 1)
        .select(*keys, "open_ns", "close_ns", (pl.col("prev") + 1).alias("a"), (pl.col("bar_idx") - 1).alias("z"))
    )
    tail = (
        b.group_by(sess)
        .agg(pl.col("close_ns").first(), pl.col("bar_idx").max().alias("last"), pl.col("n_bars").first())
        .filter(pl.col("last") < pl.col("n_bars") - 1)
        .select(*keys, "open_ns", "close_ns", (pl.col("last") + 1).alias("a"), (pl.col("n_bars") - 1).alias("z"))
    )
    # whole sessions with no bar, between the source's first and last session
    span = b.group_by(keys).agg(pl.col("open_ns").min().alias("lo"), pl.col("open_ns").max().alias("hi"))
    cal = calendar_column(span, calendars)
    table = session_table(cal.unique().to_list(), cast(int, span["lo"].min()), cast(int, span["hi"].max()))
    span = span.with_columns(cal)
    every = (
        span.join(table.select("calendar", "open_ns", "close_ns"), on="calendar")
        .filter(pl.col("open_ns").is_between(pl.col("lo"), pl.col("hi")))
        .join(b.select(sess).unique(), on=sess, how="anti")
        .with_columns(slot_exprs(pl.col("close_ns"), tf))
        .select(*keys, "open_ns", "close_ns", pl.lit(0, pl.Int64).alias("a"), pl.col("bar_idx").alias("z"))
    )
    runs = pl.concat([inner, tail, every], how="vertical_relaxed")
    if length:
        start = pl.col("open_ns") + pl.col("a") * length
        end = pl.min_horizontal(pl.col("open_ns") + (pl.col("z") + 1) * length, pl.col("close_ns"))
    else:
        start, end = pl.col("open_ns"), pl.col("close_ns")
    return runs.select(
        *keys,
        pl.lit(tf).alias("tf"),
        start.cast(TS).alias("start"),
        end.cast(TS).alias("end"),
        (pl.col("z") - pl.col("a") + 1).cast(pl.Int64).alias("n_bars"),
    ).sort(*keys, "start")
