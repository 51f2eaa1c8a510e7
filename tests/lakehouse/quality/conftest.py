"""Fixtures for the quality gate: real LEAN equity bars and splits, read through the LEAN adapters.

The adapters do what ingest does (bars re-stamped at their END in UTC, daily bars at the session
close, prices scaled back from LEAN's * 10000), so the gate is tested on exactly what silver sees.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from lakehouse.sources import lean, lean_reference
from lakehouse.tables import BRONZE_BARS


def _lean_root(path: Path) -> Path:
    """The LEAN data folder holding ``path`` (the ancestor that holds equity/)."""
    return next(p for p in path.parents if (p / "equity").is_dir())


def read_lean_bars(path: Path, symbol_id: str, tf: str, day: str | None = None) -> pl.DataFrame:
    """Read a LEAN trade-bar zip through the LEAN adapter, as raw silver rows (ts = bar end, UTC)."""
    params = lean.Params(root=_lean_root(path), files=(path,))
    chunks = [c for batch in lean.batches(params, lambda: None) for c in batch.chunks if c.table == BRONZE_BARS]
    bars = pl.concat([c.data for c in chunks]).filter(
        (pl.col("symbol_id") == symbol_id) & (pl.col("tf") == tf) & (pl.col("kind") == "trade")
    )
    return bars.sort("ts").select(
        "symbol_id", "tf", "ts", pl.lit("raw").alias("adjustment"), "open", "high", "low", "close", "volume"
    )


def read_lean_splits(path: Path, symbol_id: str) -> pl.DataFrame:
    """Split events (symbol_id, ex_date, ratio) from a LEAN factor file, through the LEAN reference adapter."""
    (chunk,) = list(lean_reference.factor_chunks(path))
    actions = chunk.data.filter((pl.col("kind") == "split") & (pl.col("symbol_id") == symbol_id))
    return actions.select("symbol_id", "ex_date", "ratio").sort("ex_date")


@pytest.fixture
def lean_usa(shared_data) -> Path:
    return shared_data / "lean" / "equity" / "usa"


QUALITY_DTYPE = pl.Struct(
    {
        "stale": pl.Boolean,
        "outlier_frac": pl.Float64,
        "n_src": pl.Int64,
        "lat_ms": pl.Float64,
        "sources": pl.List(pl.String),
        "outliers": pl.List(pl.String),
    }
)


def as_silver(bars: pl.DataFrame) -> pl.DataFrame:
    """Complete bars with silver.bars' remaining columns (known_at = ts, one source)."""
    return bars.with_columns(
        pl.lit(None, pl.Float64).alias("vwap"),
        pl.lit(None, pl.Int64).alias("n_trades"),
        pl.struct(
            pl.lit(False).alias("stale"),
            pl.lit(0.0).alias("outlier_frac"),
            pl.lit(1, pl.Int64).alias("n_src"),
            pl.lit(0.0).alias("lat_ms"),
            pl.lit(["lean"]).alias("sources"),
            pl.lit([], pl.List(pl.String)).alias("outliers"),
        )
        .cast(QUALITY_DTYPE)
        .alias("quality"),
        pl.col("ts").alias("known_at"),
    )


def random_walk_bars(
    n: int, symbol_id: str = "AAPL:US", tf: str = "1m", seed: int = 7, start: str = "2024-01-08 14:31"
) -> pl.DataFrame:
    """Well-formed silver bars: a random walk with 0.05% steps, OHLC consistent, volume ~ 1e4."""
    import numpy as np

    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 5e-4, n)))
    open_ = np.concatenate([[100.0], close[:-1]])
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 2e-4, n)))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 2e-4, n)))
    ts = pl.datetime_range(
        pl.lit(start).str.to_datetime().dt.replace_time_zone("UTC"),
        pl.lit(start).str.to_datetime().dt.replace_time_zone("UTC") + pl.duration(minutes=n - 1),
        "1m",
        eager=True,
    ).cast(pl.Datetime("ns", "UTC"))
    return as_silver(
        pl.DataFrame(
            {
                "symbol_id": symbol_id,
                "tf": tf,
                "ts": ts,
                "adjustment": "raw",
                "open": open_,
                "high": high,
                "low": low,
                "close": close,
                "volume": rng.integers(5_000, 15_000, n).astype(float),
            }
        )
    )


@pytest.fixture
def make_bars():
    return random_walk_bars


@pytest.fixture
def lean_bars():
    return read_lean_bars


@pytest.fixture
def lean_splits():
    return read_lean_splits


@pytest.fixture
def to_silver():
    return as_silver
