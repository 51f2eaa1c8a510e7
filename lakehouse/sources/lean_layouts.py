"""LEAN column layouts and their mapping onto bronze trades, quotes and bars.

Layouts (lean/SOURCE.txt; no header; time first):
- equity tick trade: ms, price*1e4, size, exchange, sale condition, suspicious
- equity tick quote: ms, bid*1e4, bid size, ask*1e4, ask size, exchange, condition, suspicious
- forex tick quote:  ms, bid, ask
- trade bars:        time, O, H, L, C, volume
- quote bars:        time, bid O/H/L/C, last bid size, ask O/H/L/C, last ask size
``time`` is ms since midnight of the file's date for tick/second/minute files and "YYYYMMDD HH:MM"
for hour/daily files, in the data time zone (``lean_time``). Equity prices are scaled by 10000.

Choices (documented here once):
- a zero price marks a missing quote side: that side's price and size become null;
- trade ``side`` is unknown (null); ``conditions`` keeps the sale condition as delivered and appends
  ``;suspicious`` when the vendor's suspicious flag is set (the print is kept, as delivered);
- a quote flagged suspicious is quarantined (bronze.quotes has no column to carry the flag); the
  quote condition code is not stored (bronze.quotes has no conditions column; it stays in ``_raw``
  only for quarantined rows);
- ``seq`` numbers rows sharing (symbol, ts) in file order, so repeated prints are all kept;
- a quote-bar line yields two bar rows, kind "bid" and "ask" (one when a side is empty, as in
  LEAN's pre-market quote bars); their ``volume`` is the last bid/ask size the vendor reports, not
  a traded volume.
"""

from __future__ import annotations

from datetime import date

import polars as pl

from lakehouse.ingest import Chunk
from lakehouse.schema import TableSpec
from lakehouse.sources.lean_parse import REASON, Field, parse_fields, reject, split_lines, split_rejected
from lakehouse.sources.lean_paths import LeanFile
from lakehouse.sources.lean_time import MS_PER_DAY, NS, TF, bar_end, localize, ms_since_midnight
from lakehouse.tables import BRONZE_BARS, BRONZE_QUOTES, BRONZE_TRADES

OHLC = ("open", "high", "low", "close")


def layout(f: LeanFile) -> tuple[Field, ...]:
    """The column layout of a LEAN market-data file (not universes)."""
    scale = 10_000.0 if f.asset_class == "equity" else 1.0
    time = Field("time", "float") if f.day is not None else Field("time", "datetime")
    px = lambda name: Field(name, "float", scale=scale)  # noqa: E731
    if f.resolution == "tick":
        if f.asset_class == "forex":
            return (time, px("bid"), px("ask"))
        if f.kind == "trade":
            return (
                time,
                px("price"),
                Field("size"),
                Field("exchange", "str", required=False),
                Field("condition", "str", required=False),
                Field("suspicious", required=False),
            )
        return (
            time,
            px("bid"),
            Field("bid_size"),
            px("ask"),
            Field("ask_size"),
            Field("exchange", "str", required=False),
            Field("condition", "str", required=False),
            Field("suspicious", required=False),
        )
    if f.kind == "trade":
        return (time, *(px(c) for c in OHLC), Field("volume"))

    def side(s: str) -> tuple[Field, ...]:
        return (*(Field(f"{s}_{c}", scale=scale, required=False) for c in OHLC), Field(f"{s}_size", required=False))

    return (time, *side("bid"), *side("ask"))


def _start_times(df: pl.DataFrame, day: date | None) -> pl.DataFrame:
    """Add ``_start`` (naive local time) from ``time``; reject out-of-range ms-since-midnight."""
    if day is None:
        return df.with_columns(pl.col("time").alias("_start"))
    df = reject(
        df,
        (pl.col("time") < 0) | (pl.col("time") >= MS_PER_DAY) | pl.col("time").is_nan(),
        pl.format("time: ms since midnight out of range ({})", pl.col("time")),
    )
    ms = pl.when(pl.col(REASON).is_null()).then(pl.col("time")).otherwise(0.0)
    return df.with_columns(ms_since_midnight(day, ms).alias("_start"))


def parse_lines(f: LeanFile, data: bytes, window: tuple[date | None, date | None] = (None, None)) -> pl.DataFrame:
    """Split and cast a market-data file; rows keep ``_row``, ``_raw``, ``_start`` and ``_reason``.

    ``window`` (inclusive dates) drops rows of whole-history files (hour, daily) outside it before
    they count as read.
    """
    df = _start_times(parse_fields(split_lines(data), layout(f)), f.day)
    lo, hi = window
    if f.day is None and (lo or hi):
        d = pl.col("_start").dt.date()
        keep = pl.lit(True)
        if lo:
            keep = keep & (d >= lo)
        if hi:
            keep = keep & (d <= hi)
        df = df.filter(pl.col(REASON).is_not_null() | keep)
    return df


def _present(side: str) -> pl.Expr:
    """A quote-bar side is delivered when any of its prices is; an empty side yields no bar."""
    return pl.any_horizontal(pl.col(f"{side}_{c}").is_not_null() for c in OHLC)


def _seq() -> pl.Expr:
    return pl.int_range(pl.len(), dtype=pl.Int64).over("ts")


def _ticks(f: LeanFile, good: pl.DataFrame, tz: str) -> tuple[TableSpec, pl.DataFrame]:
    good = good.with_columns(localize(pl.col("_start"), tz).alias("ts"), pl.lit(f.symbol_id).alias("symbol_id"))
    good = good.with_columns(_seq().alias("seq"))
    keep = ["_row", "_raw"]
    if f.kind == "trade":
        cond = pl.col("condition")
        flagged = pl.col("suspicious").fill_null(0) != 0
        conditions = pl.when(flagged).then(pl.concat_str([cond.fill_null(""), pl.lit(";suspicious")])).otherwise(cond)
        return BRONZE_TRADES, good.select(
            "ts",
            "symbol_id",
            "price",
            "size",
            pl.lit(None, pl.Int8).alias("side"),
            "exchange",
            conditions.alias("conditions"),
            "seq",
            *keep,
        )
    sides = []
    for side in ("bid", "ask"):
        missing = pl.col(side) == 0
        sides += [
            pl.when(missing).then(None).otherwise(pl.col(side)).alias(side),
            pl.when(missing).then(None).otherwise(pl.col(f"{side}_size")).alias(f"{side}_size"),
        ]
    if "bid_size" not in good.columns:  # forex ticks carry no sizes
        good = good.with_columns(pl.lit(None, pl.Float64).alias("bid_size"), pl.lit(None, pl.Float64).alias("ask_size"))
    exchange = pl.col("exchange") if "exchange" in good.columns else pl.lit(None, pl.String)
    return BRONZE_QUOTES, good.select("ts", "symbol_id", *sides, exchange.alias("exchange"), "seq", *keep)


def _bars(f: LeanFile, good: pl.DataFrame, tz: str) -> tuple[TableSpec, pl.DataFrame]:
    good = good.with_columns(bar_end(good, "_start", f.resolution, f.asset_class, tz).cast(NS).alias("ts"))
    common = [pl.col("ts"), pl.lit(TF[f.resolution]).alias("tf"), pl.lit(f.symbol_id).alias("symbol_id")]
    nulls = [pl.lit(None, pl.Float64).alias("vwap"), pl.lit(None, pl.Int64).alias("n_trades")]
    keep = [pl.col("_row"), pl.col("_raw")]
    if f.kind == "trade":
        return BRONZE_BARS, good.select(*common, pl.lit("trade").alias("kind"), *OHLC, "volume", *nulls, *keep)
    frames = [
        good.filter(_present(side)).select(
            *common,
            pl.lit(side).alias("kind"),
            *(pl.col(f"{side}_{c}").alias(c) for c in OHLC),
            pl.col(f"{side}_size").alias("volume"),
            *nulls,
            *keep,
        )
        for side in ("bid", "ask")
    ]
    return BRONZE_BARS, pl.concat(frames)


def market_chunk(f: LeanFile, data: bytes, tz: str, window: tuple[date | None, date | None] = (None, None)) -> Chunk:
    """Parse one LEAN market-data file into a chunk for its bronze table (rejected lines attached)."""
    df = parse_lines(f, data, window)
    if f.resolution == "tick" and f.asset_class == "equity" and f.kind == "quote":
        df = reject(df, pl.col("suspicious").fill_null(0) != 0, "suspicious: quote flagged suspicious by the vendor")
    if f.resolution != "tick" and f.kind == "quote":
        df = reject(df, ~_present("bid") & ~_present("ask"), "bid and ask: both sides missing")
    good, rejected = split_rejected(df)
    spec, rows = (_ticks if f.resolution == "tick" else _bars)(f, good, tz)
    return Chunk(spec, rows, rejected)
