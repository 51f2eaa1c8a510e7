"""Deterministic trade deliveries and a lake fingerprint shared by the ingest fault tests.

Functions here run in spawned child processes too (deltalake must not fork), so they take plain
arguments (a lake root and its storage options) and build everything else themselves.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import polars as pl

from lakehouse.ingest import Batch, Chunk, Ingestor
from lakehouse.storage import Lake
from lakehouse.tables import BRONZE_INGEST_LOG, BRONZE_QUARANTINE, BRONZE_TRADES

NS = pl.Datetime("ns", "UTC")
CLOCK_AT = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
DAY = 86_400 * 10**9
T0 = 1_700_000_000 * 10**9


def trades(n: int, day: int, symbol: str = "AAPL:US", bad_every: int = 0) -> pl.DataFrame:
    """``n`` trades on one day, one every millisecond; every ``bad_every``-th has a negative price."""
    ts = [T0 + day * DAY + i * 1_000_000 for i in range(n)]
    price = [100.0 + (i % 50) * 0.01 for i in range(n)]
    if bad_every:
        price = [-p if i % bad_every == 0 else p for i, p in enumerate(price)]
    return pl.DataFrame(
        {
            "ts": pl.Series(ts).cast(NS),
            "symbol_id": [symbol] * n,
            "price": price,
            "size": [float(1 + i % 7) for i in range(n)],
            "side": pl.Series([1 if i % 2 else -1 for i in range(n)], dtype=pl.Int8),
            "exchange": ["Q"] * n,
            "conditions": pl.Series([None] * n, dtype=pl.String),
            "seq": [0] * n,
        }
    )


def batches(files: int = 2, chunks: int = 2, rows: int = 800) -> list[Batch]:
    """``files`` deliveries of ``chunks`` chunks each (one day per chunk), a few bad prices in each."""
    out = []
    for f in range(files):
        parts = [Chunk(BRONZE_TRADES, trades(rows, f * chunks + c, bad_every=97)) for c in range(chunks)]
        out.append(Batch("vendor", f"trades-{f}.csv", f"batch-{f:03d}", parts))
    return out


def ingest(root: str, options: dict, barrier=None, files: int = 2, chunks: int = 2, rows: int = 800) -> dict:
    """Child process: wait for the others, ingest the deliveries, return the totals and balance."""
    lake = Lake(root, options)
    deliveries = batches(files, chunks, rows)
    if barrier is not None:
        barrier.wait(timeout=120)
    report = Ingestor(lake, lambda: CLOCK_AT).run(deliveries)
    totals = {k: report.total(k) for k in ("rows_read", "rows_written", "duplicates", "quarantined")}
    return {**totals, "balanced": report.balanced, "failures": [f.message for f in report.failures]}


def fingerprint(lake: Lake) -> dict:
    """Row counts and content checksums of the tables an ingest writes (order independent)."""
    out = {}
    for spec, drop in (
        (BRONZE_TRADES, ["ingest_ts"]),
        (BRONZE_QUARANTINE, ["ingest_ts"]),
        (BRONZE_INGEST_LOG, ["ingest_ts"]),
    ):
        df = lake.read(spec).drop(drop)
        rows = sorted(df.hash_rows(seed=1).to_list())
        out[spec.qualified] = (df.height, hashlib.sha256(str(rows).encode()).hexdigest()[:16])
    return out
