"""The featurize flow: silver raw bars + corporate actions -> gold.features and gold.labels, idempotent."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from feature_store.gold import GOLD_FEATURES, GOLD_LABEL_SETS, GOLD_LABELS, read_features
from feature_store.training_set import training_set
from flows.featurize import featurize
from lakehouse.adjust import _default_quality
from lakehouse.tables import BRONZE_CORPORATE_ACTIONS, SILVER_BARS

SYMBOLS = ["AAPL:US", "IBM:US", "SPY:US"]
START, END = datetime(2014, 1, 1, tzinfo=UTC), datetime(2014, 12, 31, tzinfo=UTC)


def _seed(lake, lean_daily, lean_actions):
    bars = lean_daily.filter(pl.col("symbol_id").is_in(SYMBOLS), pl.col("ts") >= datetime(2012, 6, 1, tzinfo=UTC))
    lake.append(SILVER_BARS, bars.with_columns(pl.lit("raw").alias("adjustment"), _default_quality().alias("quality")))
    acts = lean_actions.filter(pl.col("symbol_id").is_in(SYMBOLS)).with_columns(
        pl.lit("lean").alias("source"), pl.col("known_at").alias("ingest_ts"), pl.lit("test").alias("batch_id")
    )
    lake.append(BRONZE_CORPORATE_ACTIONS, acts)
    return bars


def test_featurize_writes_the_window_and_is_idempotent(prefect_harness, lake, lean_daily, lean_actions):
    bars = _seed(lake, lean_daily, lean_actions)
    kw = {"start": START, "end": END, "lake_root": lake.root, "label_horizons": [1, 5]}
    first = featurize(**kw)  # default sets: bar_v1 and curve_v1, and this lake holds no futures
    assert first["gold.features/curve_v1"] == 0
    feats1, labels1 = lake.read(GOLD_FEATURES).sort("symbol_id", "ts"), lake.read(GOLD_LABELS)
    second = featurize(**kw)
    feats2, labels2 = lake.read(GOLD_FEATURES).sort("symbol_id", "ts"), lake.read(GOLD_LABELS)
    assert first == second and first["gold.features/bar_v1"] == feats1.height
    assert_frame_equal(feats1, feats2)
    assert_frame_equal(labels1.sort("symbol_id", "horizon", "ts"), labels2.sort("symbol_id", "horizon", "ts"))
    in_window = bars.filter(pl.col("ts").is_between(START, END))
    assert feats1.height == in_window.height and set(feats1["symbol_id"]) == set(SYMBOLS)
    assert (feats1["known_at"] >= feats1["ts"]).all()
    edges = lake.read(GOLD_LABEL_SETS).row(0, named=True)
    assert edges["label_set"] == "ret_bars_v1" and '"edges"' in edges["discretizer"]
    frame = training_set(read_features(lake, "bar_v1"), labels1)
    assert frame.height > 0 and (frame["known_at_bar_v1"] <= frame["ts"]).all()
    aapl_split = feats1.filter(pl.col("symbol_id") == "AAPL:US", pl.col("ts").dt.date() == datetime(2014, 6, 9).date())
    assert abs(aapl_split["ret_1"][0]) < 0.05  # point-in-time split adjustment through the flow


def test_featurize_window_rows_do_not_depend_on_the_run_start(lake, lean_daily, lean_actions):
    """The domain step under the flow, without a Prefect server: windows agree with one long run, rewrites are no-ops."""
    from feature_store.featurize import featurize_window
    from feature_store.gold import write_features

    bars = lean_daily.filter(pl.col("symbol_id").is_in(SYMBOLS), pl.col("ts") >= datetime(2012, 6, 1, tzinfo=UTC))
    acts = lean_actions.filter(pl.col("symbol_id").is_in(SYMBOLS))
    mid = datetime(2014, 6, 30, tzinfo=UTC)
    whole = featurize_window(bars, acts, ["bar_v1"], START, END)["bar_v1"]
    first = featurize_window(bars, acts, ["bar_v1"], START, mid)["bar_v1"]
    second = featurize_window(bars, acts, ["bar_v1"], mid, END)["bar_v1"].filter(pl.col("ts") > mid)
    assert_frame_equal(pl.concat([first, second]).sort("symbol_id", "ts"), whole)
    write_features(lake, first)
    write_features(lake, whole)
    once = lake.read(GOLD_FEATURES).sort("symbol_id", "ts")
    write_features(lake, whole)
    assert_frame_equal(lake.read(GOLD_FEATURES).sort("symbol_id", "ts"), once)
    assert once.height == whole.height


def test_featurize_writes_curve_rows_from_the_lakes_real_es_futures(prefect_harness, lake, shared_data):
    """LEAN ES contracts ingested into bronze -> the flow's curve_v1 rows equal curve_features on them, idempotently."""
    from feature_store.curve import curve_features
    from lakehouse.ingest import Ingestor
    from lakehouse.sources.lean_reference import Params, batches
    from lakehouse.tables import BRONZE_BARS, BRONZE_FUTURES_CONTRACTS

    p = Params(root=shared_data / "lean", equities=False, futures=["cme/es"], kinds=["trade"], resolutions=["daily"])
    report = Ingestor(lake, lambda: datetime(2026, 1, 1, tzinfo=UTC)).run(batches(p))
    assert report.balanced and not report.failures
    kw = {"start": datetime(2013, 10, 1, tzinfo=UTC), "end": END, "lake_root": lake.root, "label_set": None}
    first = featurize(**kw, feature_sets=["curve_v1"])
    gold = read_features(lake, "curve_v1")
    assert first == {"gold.features/curve_v1": gold.height} and gold.height > 0
    assert featurize(**kw, feature_sets=["curve_v1"]) == first
    assert_frame_equal(read_features(lake, "curve_v1"), gold)
    assert set(gold["symbol_id"]) == {"ES:CME"} and gold["ts"].min() >= kw["start"]
    contracts = lake.read(BRONZE_FUTURES_CONTRACTS)
    bars = lake.read(BRONZE_BARS).filter(pl.col("kind") == "trade", pl.col("tf") == "1d")
    expected = curve_features(bars.with_columns(pl.col("ts").alias("known_at")), contracts)
    expected = expected.filter(pl.col("ts").is_between(kw["start"], END)).with_columns(pl.lit("1d").alias("tf"))
    assert_frame_equal(gold, expected.select(gold.columns), check_dtypes=False)
    assert gold["curve_slope"].drop_nulls().len() > 0.8 * gold.height  # a few days have one contract only


def test_featurize_refuses_a_set_declared_for_other_bars():
    from core.errors import ConfigError
    from flows.featurize import _check_timeframes

    _check_timeframes(["bar_1m_v1"], "1m")
    with pytest.raises(ConfigError, match=r"tf='1m'.*bar_v1 \(1d\)"):
        _check_timeframes(["bar_v1", "bar_1m_v1"], "1m")
