"""Fixtures of the streaming featurizer tests: real BAC ticks and synthetic multi-symbol ticks (NATS: ../conftest)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

TS = pl.Datetime("ns", "UTC")
BAC_DAY = "20131007"
BAC_SLICE = (datetime(2013, 10, 7, 13, 25, tzinfo=UTC), datetime(2013, 10, 7, 14, 10, tzinfo=UTC))


@pytest.fixture(scope="session")
def bac_ticks(shared_data) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Real BAC trades and NBBO quotes of 2013-10-07, 09:25-10:10 New York (40 minutes of session).

    Read through the LEAN adapter as bronze payload (one source), so the slice is what ingest stores.
    """
    from lakehouse.sources import lean

    out = []
    for kind in ("trade", "quote"):
        params = lean.Params(root=shared_data / "lean", files=(Path(f"equity/usa/tick/bac/{BAC_DAY}_{kind}.zip"),))
        (batch,) = lean.batches(params, lambda: None)
        frame = pl.concat([c.data for c in batch.chunks]).drop("_row", "_raw", strict=False)
        out.append(frame.filter(pl.col("ts").is_between(*BAC_SLICE, closed="left")))
    return out[0], out[1]


@pytest.fixture
def synthetic_ticks() -> tuple[pl.DataFrame, pl.DataFrame]:
    """Three symbols, the last 13 minutes of one XNYS session and the first 13 of the next.

    ms-stamped trades and one-sided quote updates; many events share a millisecond (order ties),
    some quotes cross, some prints fall after the close or before the open, one symbol has quiet
    stretches, and windows of 300 s and 600 s fill up and slide.
    """
    rng = np.random.default_rng(11)
    trades, quotes = [], []
    for day in (datetime(2026, 1, 5, 20, 48, tzinfo=UTC), datetime(2026, 1, 6, 14, 30, tzinfo=UTC)):
        for k, symbol in enumerate(("AAA:US", "BBB:US", "CCC:US")):
            n = (1500, 800, 120)[k]
            ms = np.sort(rng.integers(-60_000, 12 * 60_000, n)) // (7 if k == 0 else 1) * (7 if k == 0 else 1)
            mid = 50 + 10 * k + np.cumsum(rng.choice([-0.01, 0, 0, 0.01], n))
            for j, m in enumerate(ms):
                t = day + timedelta(milliseconds=int(m))
                side = rng.integers(0, 3)
                if side == 0:
                    price = round(mid[j] + rng.choice([-0.005, 0.0, 0.005]), 3)
                    trades.append((symbol, t, price, float(rng.choice([100, 200, 300, 15_000])), j))
                else:
                    cross = 0.03 if rng.random() < 0.02 else 0.0
                    bid = round(mid[j] - 0.005 + cross, 3) if side == 1 else None
                    ask = round(mid[j] + 0.005, 3) if side == 2 else None
                    size = float(rng.integers(1, 50) * 100)
                    quotes.append((symbol, t, bid, size if bid else None, ask, size if ask else None, "Q", j))
    tr = pl.DataFrame(trades, schema=["symbol_id", "ts", "price", "size", "seq"], orient="row")
    qt = pl.DataFrame(
        quotes, schema=["symbol_id", "ts", "bid", "bid_size", "ask", "ask_size", "exchange", "seq"], orient="row"
    )
    return tr.with_columns(pl.col("ts").cast(TS)), qt.with_columns(pl.col("ts").cast(TS))
