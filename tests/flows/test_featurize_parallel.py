"""Scale-out: the featurize flow in symbol chunks on a Dask LocalCluster of processes writes the single-process rows."""

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
def test_dask_fan_out_equals_one_process(prefect_harness, tmp_path):
    from prefect_dask import DaskTaskRunner

    from feature_store.gold import GOLD_FEATURES
    from flows.featurize import featurize
    from lakehouse.storage import Lake
    from lakehouse.tables import SILVER_BARS

    bars = daily_bars(["A:US", "B:US", "C:US", "D:US"], 260)
    silver = bars.with_columns(
        pl.lit("raw").alias("adjustment"),
        pl.lit(None, pl.Int64).alias("n_trades"),
        pl.struct(
            pl.lit(False).alias("stale"), pl.lit(0.0).alias("outlier_frac"), pl.lit(1, pl.Int64).alias("n_src"),
            pl.lit(0.0).alias("lat_ms"), pl.lit(["sim"]).alias("sources"), pl.lit([], pl.List(pl.String)).alias("outliers"),
        ).alias("quality"),
    )  # fmt: skip
    sets = ["bar_v1", "xs_v1"]  # a per-symbol set fans out; the cross-sectional one runs over all symbols
    rows = {}
    for name, runner, chunks in [("one", None, 1), ("dask", "dask", 3)]:
        lake = Lake(str(tmp_path / name))
        lake.append(SILVER_BARS, silver)
        run = featurize
        if runner:
            cluster = {"n_workers": 2, "threads_per_worker": 1, "processes": True}
            run = featurize.with_options(task_runner=DaskTaskRunner(cluster_kwargs=cluster))
        run(feature_sets=sets, label_set=None, lake_root=lake.root, chunks=chunks)
        rows[name] = lake.read(GOLD_FEATURES).sort("feature_set", "symbol_id", "ts")
    single = featurize_window(bars, None, ["bar_v1"], None, None)["bar_v1"]
    assert single.height > 0 and rows["one"].filter(pl.col("feature_set") == "bar_v1").height == single.height
    assert set(rows["dask"]["feature_set"]) == set(sets) and rows["dask"]["symbol_id"].n_unique() == 4
    assert_frame_equal(rows["dask"], rows["one"])
