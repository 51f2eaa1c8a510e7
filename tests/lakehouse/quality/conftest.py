"""Fixtures for the quality gate: real LEAN equity bars read straight from the shared zips.

LEAN stamps bars at their START in America/New_York; silver stamps them at their END in UTC, so the
reader adds the bar length. Prices are stored * 10000.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import polars as pl
import pytest

_LENGTH = {"1d": "1d", "1m": "1m"}


def read_lean_bars(path: Path, symbol_id: str, tf: str, day: str | None = None) -> pl.DataFrame:
    """Read a LEAN daily (``YYYYMMDD HH:MM``) or minute (ms since midnight) trade-bar zip as silver rows."""
    with zipfile.ZipFile(path) as zf:
        raw = zf.read(zf.namelist()[0])
    names = ["t", "open", "high", "low", "close", "volume"]
    df = pl.read_csv(
        io.BytesIO(raw), has_header=False, new_columns=names, schema_overrides={"t": pl.String, "volume": pl.Float64}
    )
    if day is None:
        start = pl.col("t").str.to_datetime("%Y%m%d %H:%M")
    else:
        start = pl.lit(day).str.to_date("%Y%m%d").cast(pl.Datetime("ms")) + pl.duration(
            milliseconds=pl.col("t").cast(pl.Int64)
        )
    ts = (
        start.dt.replace_time_zone("America/New_York")
        .dt.convert_time_zone("UTC")
        .dt.offset_by(_LENGTH[tf])
        .cast(pl.Datetime("ns", "UTC"))
    )
    return df.select(
        pl.lit(symbol_id).alias("symbol_id"),
        pl.lit(tf).alias("tf"),
        ts.alias("ts"),
        pl.lit("raw").alias("adjustment"),
        *(pl.col(c).cast(pl.Float64) / 10000 for c in ("open", "high", "low", "close")),
        pl.col("volume"),
    )


def read_lean_splits(path: Path, symbol_id: str) -> pl.DataFrame:
    """Split events (ex_date, ratio) from a LEAN factor file's split-factor column."""
    f = pl.read_csv(path, has_header=False, new_columns=["date", "price_factor", "split_factor", "ref"])
    f = f.with_columns(pl.col("date").cast(pl.String).str.to_date("%Y%m%d"))
    # A row's factors apply to dates up to and including it; a split's ex-date is the next trading day.
    ratio = pl.col("split_factor").shift(-1) / pl.col("split_factor")
    return (
        f.with_columns(ratio.alias("ratio"), pl.col("date").shift(-1).alias("next"))
        .filter(pl.col("ratio") != 1.0)
        .select(pl.lit(symbol_id).alias("symbol_id"), pl.col("date").alias("last_pre_split"), "ratio")
    )


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
