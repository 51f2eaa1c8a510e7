"""The continuous-futures flow: bronze ES -> silver.continuous_futures, idempotent on re-run."""

from __future__ import annotations

from datetime import date

import polars as pl

from flows.continuous_futures import continuous_futures
from lakehouse.ingest import Ingestor
from lakehouse.security_master import known_symbols
from lakehouse.sources.lean_reference import Params, batches
from lakehouse.tables import SILVER_CONTINUOUS


def test_flow_writes_series_and_is_idempotent(prefect_harness, shared_data, lake, clock):
    params = Params(
        root=shared_data / "lean",
        equities=False,
        futures=["cme/es"],
        kinds=["trade", "openinterest"],
        resolutions=["daily", "minute"],
        minute_from=date(2013, 12, 18),
        minute_to=date(2013, 12, 18),
    )
    assert Ingestor(lake, clock, known_symbols()).run(batches(params)).balanced
    run = continuous_futures
    first = run(roots=["ES:CME"], tfs=["1d"], rules=["open_interest"], methods=["none", "panama"], lake_root=lake.root)
    table1 = lake.read(SILVER_CONTINUOUS).sort("method", "ts")
    second = run(roots=["ES:CME"], tfs=["1d"], rules=["open_interest"], methods=["none", "panama"], lake_root=lake.root)
    table2 = lake.read(SILVER_CONTINUOUS).sort("method", "ts")
    assert first == second and table1.height == sum(first.values()) > 0
    assert table1.equals(table2)
    roll = table1.filter(pl.col("roll") & (pl.col("method") == "panama")).row(0, named=True)
    assert roll["contract"] == "ESH14:CME" and roll["ts"].date() == date(2013, 12, 19)
