"""Per-source bars from trades (or from finer vendor bars), aware of trading sessions.

A bar is stamped at its END and holds OHLCV, VWAP, the trade count and ``last_ts`` (the last
trade in it, used for staleness). Trades outside every session of the symbol's calendar make no
bar; they are counted in ``outside``. Slots of an open session with no trade are reported in
``gaps`` (runs of missing bars), never filled here.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from lakehouse.reconcile.sessions import calendar_column, locate, session_table, slot_exprs, tf_ns

TS = pl.Datetime("ns", "UTC")
BAR_COLUMNS = ("source", "symbol_id", "tf", "ts", "open", "high", "low", "close", "volume", "vwap",
               "n_trades", "last_ts", "arrival")
GAP_SCHEMA = {"source": pl.String, "symbol_id": pl.String, "tf": pl.String,
              "start": TS, "end": TS, "n_bars": pl.Int64}


@dataclass(frozen=True)
class SourceBars:
    """Bars per (source, symbol, tf, ts), the missing-bar runs, and trades outside any session."""

    bars: pl.DataFrame
    gaps: pl.DataFrame
    outside: pl.DataFrame


def _slots(frame: pl.DataFrame, pos_ns: pl.Series, tf: str, calendars: dict[str, str]) -> pl.DataFrame:
    cal = calendar_column(frame, calendars)
    table = session_table(cal.unique().to_list(), pos_ns.min(), pos_ns.max())
    located = locate(pos_ns, cal, table)
    return frame.with_columns(cal, located["open_ns"], located["close_ns"], pos_ns.alias("_pos")).with_columns(
        slot_exprs(pl.col("_pos"), tf))


def build_bars(trades: pl.DataFrame, tf: str, calendars: dict[str, str]) -> SourceBars:
    """Aggregate trades (source, symbol_id, ts, price, size[, received_ts]) into session bars.

    ``arrival`` is the latest ``received_ts`` of the bar's trades when the feed records arrival
    times, else null (the consensus then uses the vendor's estimated latency).
    """
    ts_ns = trades.get_column("ts").cast(TS).dt.epoch("ns")
    placed = _slots(trades, ts_ns, tf, calendars)
    inside = placed.filter(pl.col("open_ns").is_not_null())
    outside = (placed.filter(pl.col("open_ns").is_null()).group_by("source", "symbol_id")
               .agg(pl.len().cast(pl.Int64).alias("n_trades"), pl.col("ts").min().alias("first_ts"),
                    pl.col("ts").max().alias("last_ts")).sort("source", "symbol_id"))
    arrival = (pl.col("received_ts").max() if "received_ts" in trades.columns else pl.lit(None, TS)).alias("arrival")
    bars = (inside.group_by("source", "symbol_id", "bar_end", "open_ns", "close_ns", "bar_idx", "n_bars")
            .agg(pl.col("price").get(pl.col("_pos").arg_min()).alias("open"),
                 pl.col("price").max().alias("high"), pl.col("price").min().alias("low"),
                 pl.col("price").get(pl.col("_pos").arg_max()).alias("close"),
                 pl.col("size").sum().alias("volume"),
                 (pl.col("price") * pl.col("size")).sum().alias("_pv"),
                 pl.len().cast(pl.Int64).alias("n_trades"),
                 pl.col("ts").max().alias("last_ts"), arrival)
            .with_columns(pl.when(pl.col("volume") > 0).then(pl.col("_pv") / pl.col("volume")).alias("vwap")))
    return SourceBars(_finish(bars, tf), _gaps(bars, tf, calendars), outside)


def aggregate_bars(bars: pl.DataFrame, tf: str, calendars: dict[str, str]) -> SourceBars:
    """Roll finer per-source bars (e.g. vendor 1m bars) up to ``tf`` inside sessions."""
    pos = bars.get_column("ts").cast(TS).dt.epoch("ns") - 1  # a bar stamped at its end covers (start, end]
    placed = _slots(bars.sort("ts"), pos.sort(), tf, calendars)
    inside = placed.filter(pl.col("open_ns").is_not_null())
    outside = (placed.filter(pl.col("open_ns").is_null()).group_by("source", "symbol_id")
               .agg(pl.col("n_trades").sum().cast(pl.Int64), pl.col("ts").min().alias("first_ts"),
                    pl.col("ts").max().alias("last_ts")).sort("source", "symbol_id"))
    vol = pl.col("volume").fill_null(0)
    out = (inside.group_by("source", "symbol_id", "bar_end", "open_ns", "close_ns", "bar_idx", "n_bars", maintain_order=True)
           .agg(pl.col("open").first(), pl.col("high").max(), pl.col("low").min(), pl.col("close").last(),
                vol.sum().alias("volume"), (pl.col("vwap").fill_null(pl.col("close")) * vol).sum().alias("_pv"),
                pl.col("n_trades").sum().cast(pl.Int64), pl.col("last_ts").max(), pl.col("arrival").max())
           .with_columns(pl.when(pl.col("volume") > 0).then(pl.col("_pv") / pl.col("volume")).alias("vwap")))
    return SourceBars(_finish(out, tf), _gaps(out, tf, calendars), outside)


def _finish(bars: pl.DataFrame, tf: str) -> pl.DataFrame:
    return (bars.with_columns(pl.lit(tf).alias("tf"), pl.col("bar_end").cast(TS).alias("ts"),
                              pl.col("arrival").cast(TS), pl.col("last_ts").cast(TS))
            .select(BAR_COLUMNS).sort("source", "symbol_id", "ts"))


def _gaps(bars: pl.DataFrame, tf: str, calendars: dict[str, str]) -> pl.DataFrame:
    """Return runs of bar slots with no bar, inside sessions between a source's first and last bar."""
    if bars.height == 0:
        return pl.DataFrame(schema=GAP_SCHEMA)
    length = tf_ns(tf) or 0
    keys = ["source", "symbol_id"]
    b = bars.select(*keys, "open_ns", "close_ns", "bar_idx", "n_bars").sort(*keys, "open_ns", "bar_idx")
    sess = ["source", "symbol_id", "open_ns"]
    inner = (b.with_columns(pl.col("bar_idx").shift(1).over(sess).fill_null(-1).alias("prev"))
             .filter(pl.col("bar_idx") - pl.col("prev") > 1)
             .select(*keys, "open_ns", "close_ns", (pl.col("prev") + 1).alias("a"), (pl.col("bar_idx") - 1).alias("z")))
    tail = (b.group_by(sess).agg(pl.col("close_ns").first(), pl.col("bar_idx").max().alias("last"), pl.col("n_bars").first())
            .filter(pl.col("last") < pl.col("n_bars") - 1)
            .select(*keys, "open_ns", "close_ns", (pl.col("last") + 1).alias("a"), (pl.col("n_bars") - 1).alias("z")))
    # whole sessions with no bar, between the source's first and last session
    span = b.group_by(keys).agg(pl.col("open_ns").min().alias("lo"), pl.col("open_ns").max().alias("hi"))
    cal = calendar_column(span, calendars)
    table = session_table(cal.unique().to_list(), span["lo"].min(), span["hi"].max())
    span = span.with_columns(cal)
    every = (span.join(table.select("calendar", "open_ns", "close_ns"), on="calendar")
             .filter(pl.col("open_ns").is_between(pl.col("lo"), pl.col("hi")))
             .join(b.select(sess).unique(), on=sess, how="anti")
             .with_columns(slot_exprs(pl.col("close_ns"), tf))
             .select(*keys, "open_ns", "close_ns", pl.lit(0, pl.Int64).alias("a"), pl.col("bar_idx").alias("z")))
    runs = pl.concat([inner, tail, every], how="vertical_relaxed")
    if length:
        start = pl.col("open_ns") + pl.col("a") * length
        end = pl.min_horizontal(pl.col("open_ns") + (pl.col("z") + 1) * length, pl.col("close_ns"))
    else:
        start, end = pl.col("open_ns"), pl.col("close_ns")
    return (runs.select(*keys, pl.lit(tf).alias("tf"), start.cast(TS).alias("start"), end.cast(TS).alias("end"),
                        (pl.col("z") - pl.col("a") + 1).cast(pl.Int64).alias("n_bars"))
            .sort(*keys, "start"))
