"""Featurize fanned out per symbol: one task per symbol on the flow's task runner.

With Prefect's ``DaskTaskRunner`` the symbols run on a ``dask.distributed`` cluster (a LocalCluster
of processes on one machine, or a scheduler address in production: DESIGN section 9); with the
default runner they run in this process. Features of one symbol depend only on that symbol's bars
(and corporate actions), so the union of the per-symbol frames equals the single-process result
(tests/flows/test_featurize_parallel.py holds it to that).
"""

from __future__ import annotations

from datetime import datetime

import polars as pl
from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from feature_store.featurize import featurize_window


@task(name="featurize-symbol", task_run_name="{symbol}", cache_policy=NO_CACHE)
def featurize_symbol(
    symbol: str, bars: pl.DataFrame, feature_sets: list[str], start: datetime | None, end: datetime | None, tz: str
) -> dict[str, pl.DataFrame]:
    return featurize_window(bars, None, feature_sets, start, end, tz)


@flow(name="featurize-parallel")
def featurize_parallel(
    bars: pl.DataFrame,
    feature_sets: list[str],
    start: datetime | None = None,
    end: datetime | None = None,
    tz: str = "America/New_York",
) -> dict[str, pl.DataFrame]:
    """Feature rows per set for every symbol of ``bars``, one task per symbol; concatenated by (symbol, ts)."""
    symbols = sorted(bars["symbol_id"].unique().to_list())
    futures = [
        featurize_symbol.submit(s, bars.filter(pl.col("symbol_id") == s), feature_sets, start, end, tz) for s in symbols
    ]
    parts = [f.result() for f in futures]
    return {
        name: pl.concat([p[name] for p in parts], how="vertical_relaxed").sort("symbol_id", "ts")
        for name in feature_sets
    }
