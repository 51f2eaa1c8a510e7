"""Build silver.continuous_futures from bronze bars, open interest and contract definitions.

Thin flow: read bronze at the edge, call ``lakehouse.futures_continuous.continuous_series`` for
each (root, rule, method), and write each series with ``Lake.replace_window`` on its
(symbol_id, tf, method, roll_rule) slice, so re-running the flow leaves the table unchanged.
"""

from __future__ import annotations

from datetime import datetime

import polars as pl
import pyarrow.compute as pc
from prefect import flow, task

from core.profile import load_profile
from core.strategy import load_strategy
from lakehouse.futures_continuous import continuous_series, one_delivery_per_key
from lakehouse.predicates import where
from lakehouse.storage import Lake
from lakehouse.tables import BRONZE_BARS, BRONZE_FUTURES_CONTRACTS, BRONZE_OPEN_INTEREST, SILVER_CONTINUOUS


@task
def read_root(lake: Lake, root: str, priority: list[str]) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Bronze contracts of ``root`` and their trade bars and open interest (one vendor's row per key)."""
    contracts = lake.read(BRONZE_FUTURES_CONTRACTS).filter(pl.col("root") == root).unique("contract")
    symbols = contracts["contract"].to_list()
    bars = lake.read(BRONZE_BARS, filter=pc.field("symbol_id").isin(symbols) & (pc.field("kind") == "trade"))
    oi = lake.read(BRONZE_OPEN_INTEREST, filter=pc.field("symbol_id").isin(symbols))
    bars = one_delivery_per_key(bars, ["symbol_id", "tf", "ts"], priority)
    oi = one_delivery_per_key(oi, ["symbol_id", "ts"], priority)
    return contracts, bars, oi


@task
def write_series(lake: Lake, series: pl.DataFrame, symbol_id: str, tf: str, method: str, rule: str) -> int:
    predicate = where(symbol_id=symbol_id, tf=tf, method=method, roll_rule=rule)
    return lake.replace_window(SILVER_CONTINUOUS, series, predicate)


@flow(name="continuous-futures")
def continuous_futures(
    roots: list[str] = ["ES:CME"],
    tfs: list[str] = ["1d"],
    rules: list[str] = ["open_interest"],
    methods: list[str] = ["none", "panama", "ratio"],
    as_of: datetime | None = None,
    lake_root: str | None = None,
    profile: str = "local",
    vendor_priority: list[str] | None = None,
) -> dict[str, int]:
    """Write continuous series for each root x tf x rule x method; return rows written per series.

    ``lake_root`` points at another lake reached with the profile's storage options (S3 keys are
    kept); ``vendor_priority`` orders the vendors when several deliver a bar (default: the
    strategy's ``universe.sources``).
    """
    lake = Lake.from_profile(load_profile(profile), root=lake_root)
    priority = vendor_priority if vendor_priority is not None else load_strategy().universe.sources
    written: dict[str, int] = {}
    for symbol_id in roots:
        root = symbol_id.split(":", 1)[0]
        contracts, bars, oi = read_root(lake, root, priority)
        for tf in tfs:
            for rule in rules:
                for method in methods:
                    series = continuous_series(bars, oi, contracts, rule, method, as_of, tf=tf, symbol_id=symbol_id)
                    written[f"{symbol_id}/{tf}/{rule}/{method}"] = write_series(
                        lake, series, symbol_id, tf, method, rule
                    )
    return written
