"""Scale-out: featurize per symbol on a Dask LocalCluster of processes equals the single-process result."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from feature_store.featurize import featurize_window


def daily_bars(symbols: list[str], days: int) -> pl.DataFrame:
    rng = np.random.default_rng(11)
    frames = []
    for s in symbols:
        close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, days)))
        ts = [datetime(2024, 1, 2, 21, tzinfo=UTC) + timedelta(days=i) for i in range(days)]
        frames.append(
            pl.DataFrame(
                {
                    "symbol_id": [s] * days,
                    "tf": ["1d"] * days,
                    "ts": ts,
                    "open": close * (1 + rng.normal(0, 0.002, days)),
                    "high": close * 1.01,
                    "low": close * 0.99,
                    "close": close,
                    "volume": rng.uniform(1e5, 2e5, days),
                    "vwap": close,
                    "known_at": [t + timedelta(minutes=1) for t in ts],
                }
            )
        )
    return pl.concat(frames).with_columns(pl.col("ts", "known_at").dt.cast_time_unit("ns"))


@pytest.mark.slow
def test_dask_fan_out_equals_one_process(prefect_harness):
    from prefect_dask import DaskTaskRunner

    from flows.featurize_parallel import featurize_parallel

    bars = daily_bars(["A:US", "B:US", "C:US", "D:US"], 260)
    single = featurize_window(bars, None, ["bar_v1"], None, None)["bar_v1"].sort("symbol_id", "ts")
    runner = DaskTaskRunner(cluster_kwargs={"n_workers": 2, "threads_per_worker": 1, "processes": True})
    fanned = featurize_parallel.with_options(task_runner=runner)(bars, ["bar_v1"])["bar_v1"]
    assert single.height > 0 and fanned["symbol_id"].n_unique() == 4
    assert_frame_equal(fanned, single)
