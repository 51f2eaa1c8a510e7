"""Real LEAN daily bars and corporate actions for the feature tests, read once per session; a NATS server."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from mps.nats_server import NatsServer

UNIVERSE = "equity/usa/daily"


@pytest.fixture(scope="session")
def lean_daily(shared_data) -> pl.DataFrame:
    """Raw LEAN daily bars of the 21 equities (symbol_id, tf, ts, known_at = ts, OHLCV, vwap)."""
    from lakehouse.sources import lean

    params = lean.Params(root=shared_data / "lean", asset_classes=("equity",), resolutions=("daily",), kinds=("trade",))
    frames = [pl.concat([c.data for c in b.chunks]) for b in lean.batches(params, lambda: None)]
    bars = pl.concat(frames).drop("_row", "_raw", "kind", strict=False)
    return bars.with_columns(pl.col("ts").alias("known_at")).sort("symbol_id", "ts")


@pytest.fixture(scope="session")
def lean_actions(shared_data) -> pl.DataFrame:
    """Splits and dividends from LEAN's factor files (bronze.corporate_actions payload)."""
    from lakehouse.sources import lean_reference

    root: Path = shared_data / "lean" / "equity" / "usa" / "factor_files"
    frames = [c.data for p in sorted(root.glob("*.csv")) for c in lean_reference.factor_chunks(p)]
    return pl.concat(frames).drop("_row", "_raw", strict=False)


@pytest.fixture
def nats_server():
    """A NATS server with JetStream from the wheel, on a free loopback port, for one test."""
    with NatsServer() as server:
        yield server
