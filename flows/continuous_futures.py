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
from lakehouse.futures_continuous import continuous_series
from lakehouse.storage import Lake
from lakehouse.tables import BRONZE_BARS, BRONZE_FUTURES_CONTRACTS, BRONZE_OPEN_INTEREST, SILVER_CONTINUOUS


def _lake(lake_root: str | None, profile: str) -> Lake:
    return Lake(lake_root) if lake_root else Lake.from_profile(load_profile(profile))


@task
def read_root(lake: Lake, root: str, suffix: str) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Bronze contracts of ``root`` and their trade bars and open interest."""
    contracts = lake.read(BRONZE_FUTURES_CONTRACTS).filter(pl.col("root") == root).unique("contract")
    symbols = contracts["contract"].to_list()
    bars = lake.read(BRONZE_BARS, filter=pc.field("symbol_id").isin(symbols) & (pc.field("kind") == "trade"))
    oi = lake.read(BRONZE_OPEN_INTEREST, filter=pc.field("symbol_id").isin(symbols))
    # Several deliveries of one bar: keep one per key so the stitch sees a single series.
    bars = bars.sort("ts", "source").unique(["symbol_id", "tf", "ts"], keep="first")
    oi = oi.sort("ts", "source").unique(["symbol_id", "ts"], keep="first")
    return contracts, bars, oi


@task
def write_series(lake: Lake, series: pl.DataFrame, symbol_id: str, tf: str, method: str, rule: str) -> int:
    predicate = f"symbol_id = '{symbol_id}' AND tf = '{tf}' AND method = '{method}' AND roll_rule = '{rule}'"
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
) -> dict[str, int]:
    """Write continuous series for each root x tf x rule x method; return rows written per series."""
    lake = _lake(lake_root, profile)
    written: dict[str, int] = {}
    for symbol_id in roots:
        root, suffix = symbol_id.split(":", 1)
        contracts, bars, oi = read_root(lake, root, suffix)
        for tf in tfs:
            for rule in rules:
                for method in methods:
                    series = continuous_series(bars, oi, contracts, rule, method, as_of, tf=tf, symbol_id=symbol_id)
                    written[f"{symbol_id}/{tf}/{rule}/{method}"] = write_series(
                        lake, series, symbol_id, tf, method, rule
                    )
    return written
