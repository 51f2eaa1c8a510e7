"""Small readers for the real vendor files the reconciliation tests use (LEAN zips, CSVs)."""

from __future__ import annotations

import io
import zipfile
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl

TS = pl.Datetime("ns", "UTC")


def _csv(path: Path, columns: list[str]) -> pl.DataFrame:
    with zipfile.ZipFile(path) as z:
        raw = z.read(z.namelist()[0])
    return pl.read_csv(io.BytesIO(raw), has_header=False, new_columns=columns)


def lean_minute(path: Path, source: str, symbol: str, *, quote: bool) -> pl.DataFrame:
    """Read one LEAN minute file (UTC ms since midnight, bar start) as per-source bars ending at ts."""
    day = datetime.strptime(path.name[:8], "%Y%m%d").replace(tzinfo=UTC)
    if quote:
        cols = ["ms", "bo", "bh", "bl", "bc", "bs", "ao", "ah", "al", "ac", "as"]
        f = _csv(path, cols).with_columns(
            *[
                ((pl.col("b" + x) + pl.col("a" + x)) / 2).alias(n)
                for x, n in zip("ohlc", ("open", "high", "low", "close"))
            ],
            pl.lit(0.0).alias("volume"),
        )
    else:
        f = _csv(path, ["ms", "open", "high", "low", "close", "volume"])
    ts = (pl.lit(day).cast(TS) + pl.duration(milliseconds=pl.col("ms") + 60_000)).cast(TS)
    return f.select(
        pl.lit(source).alias("source"),
        pl.lit(symbol).alias("symbol_id"),
        pl.lit("1m").alias("tf"),
        ts.alias("ts"),
        pl.col("open", "high", "low", "close").cast(pl.Float64),
        pl.col("volume").cast(pl.Float64),
        pl.lit(None, pl.Float64).alias("vwap"),
        pl.lit(None, pl.Int64).alias("n_trades"),
        ts.alias("last_ts"),
        pl.lit(None, TS).alias("arrival"),
    )


def lean_daily(path: Path, source: str, symbol: str, close_of) -> pl.DataFrame:
    """Read a LEAN daily equity zip (prices * 10000) as daily bars ending at the session close."""
    f = _csv(path, ["day", "open", "high", "low", "close", "volume"]).with_columns(
        pl.col("day").str.slice(0, 8).str.strptime(pl.Date, "%Y%m%d"),
        *[(pl.col(c) / 10_000).alias(c) for c in ("open", "high", "low", "close")],
    )
    return daily_bars(f, source, symbol, close_of)


def csv_daily(path: Path, source: str, symbol: str, close_of, date_col: str, close_col: str = "Close") -> pl.DataFrame:
    """Read a daily CSV with a header (backtesting.py, Yahoo) as daily bars."""
    f = (
        pl.read_csv(path)
        .rename({date_col: "day"})
        .select(
            pl.col("day").str.strptime(pl.Date, "%Y-%m-%d"),
            pl.col("Open").alias("open"),
            pl.col("High").alias("high"),
            pl.col("Low").alias("low"),
            pl.col(close_col).alias("close"),
            pl.col("Volume").cast(pl.Float64).alias("volume"),
        )
    )
    return daily_bars(f, source, symbol, close_of)


def daily_bars(f: pl.DataFrame, source: str, symbol: str, close_of) -> pl.DataFrame:
    ts = close_of(f["day"])
    return (
        f.with_columns(ts.alias("ts"))
        .filter(pl.col("ts").is_not_null())
        .select(
            pl.lit(source).alias("source"),
            pl.lit(symbol).alias("symbol_id"),
            pl.lit("1d").alias("tf"),
            "ts",
            pl.col("open", "high", "low", "close", "volume").cast(pl.Float64),
            pl.lit(None, pl.Float64).alias("vwap"),
            pl.lit(None, pl.Int64).alias("n_trades"),
            pl.col("ts").alias("last_ts"),
            pl.lit(None, TS).alias("arrival"),
        )
    )


def between(f: pl.DataFrame, lo: date, hi: date) -> pl.DataFrame:
    return f.filter(pl.col("ts").dt.date().is_between(lo, hi))
