"""Vendor bars for the reconciliation tests, read through the real adapters (LEAN, tabular mappings).

What ingest would land in bronze.bars is turned into the per-source vendor bars ``reconcile_window``
takes (``preferred_vendor_bars``); quote-only minute files become mid bars from their bid and ask bars.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import polars as pl

from lakehouse.reconcile.pipeline import preferred_vendor_bars
from lakehouse.sources import lean, tabular
from lakehouse.tables import BRONZE_BARS

COLUMNS = ["source", "symbol_id", "tf", "ts", "open", "high", "low", "close", "volume", "vwap", "n_trades", "kind"]


def _bronze_bars(batches) -> pl.DataFrame:
    frames = [c.data for b in batches for c in b.chunks if c.table == BRONZE_BARS]
    return pl.concat(frames).drop("_row", "_raw", strict=False)


def _lean_root(path: Path) -> Path:
    return next(p for p in path.parents if p.name == "lean")


def _vendor(bars: pl.DataFrame, source: str, symbol: str) -> pl.DataFrame:
    out = bars.with_columns(pl.lit(source).alias("source"), pl.lit(symbol).alias("symbol_id")).select(COLUMNS)
    return preferred_vendor_bars(out).drop("kind")


def _mids(bars: pl.DataFrame) -> pl.DataFrame:
    """Mid bars from a quote file's bid and ask bars (OHLC of the mid, no volume)."""
    keys = ["symbol_id", "tf", "ts"]
    bid = bars.filter(pl.col("kind") == "bid")
    ask = bars.filter(pl.col("kind") == "ask").select(
        *keys, *[pl.col(c).alias(f"a_{c}") for c in ("open", "high", "low", "close")]
    )
    both = bid.join(ask, on=keys)
    return both.with_columns(
        *[((pl.col(c) + pl.col(f"a_{c}")) / 2).alias(c) for c in ("open", "high", "low", "close")],
        pl.lit(0.0).alias("volume"),
        pl.lit("mid").alias("kind"),
    ).select(bars.columns)


def lean_minute(path: Path, source: str, symbol: str, *, quote: bool) -> pl.DataFrame:
    """One LEAN minute file through the LEAN adapter as ``source``'s 1m bars of ``symbol``."""
    bars = _bronze_bars(lean.batches(lean.Params(root=_lean_root(path), files=(path,)), lambda: None))
    return _vendor(_mids(bars) if quote else bars.filter(pl.col("kind") == "trade"), source, symbol)


def lean_daily(path: Path, source: str, symbol: str) -> pl.DataFrame:
    """A LEAN daily equity zip through the LEAN adapter (stamped at the session close)."""
    bars = _bronze_bars(lean.batches(lean.Params(root=_lean_root(path), files=(path,)), lambda: None))
    return _vendor(bars.filter(pl.col("kind") == "trade"), source, symbol)


def mapped_daily(root: Path, mapping: str, path: str, source: str, symbol: str) -> pl.DataFrame:
    """A daily CSV through the tabular adapter and its mapping in configs/mappings."""
    params = tabular.Params(mapping=mapping, paths=[str(root / path)])
    bars = _bronze_bars(tabular.batches(params, lambda: None)).with_columns(pl.lit("trade").alias("kind"))
    return _vendor(bars, source, symbol)


def between(f: pl.DataFrame, lo: date, hi: date) -> pl.DataFrame:
    return f.filter(pl.col("ts").dt.date().is_between(lo, hi))
