"""Labels and point-in-time training sets: forward returns, split handling, label separation."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from core.errors import ConfigError, TableError
from feature_store.bars.compute import bar_features
from feature_store.discretize import Discretizer
from feature_store.labels import LabelSpec, make_labels, tick_label_spec
from feature_store.training_set import to_arrays, training_set

SPEC = LabelSpec("t_lbl", "1d", (1, 5))


@pytest.fixture(scope="module")
def aapl(lean_daily) -> pl.DataFrame:
    """AAPL daily bars around its 7:1 split of 2014-06-09."""
    return lean_daily.filter(
        pl.col("symbol_id") == "AAPL:US",
        pl.col("ts").is_between(datetime(2013, 6, 1, tzinfo=UTC), datetime(2015, 1, 1, tzinfo=UTC)),
    )


def test_forward_returns_and_buckets(aapl):
    labels = make_labels(aapl, SPEC)
    c = aapl.sort("ts")["close"].to_numpy()
    one = labels.filter(pl.col("horizon") == 1)
    assert one.height == len(c) - 1
    np.testing.assert_allclose(one["log_return"], np.log(c[1:] / c[:-1]), atol=1e-12)
    assert (one["bucket"].to_numpy() == Discretizer.returns().bucket(one["log_return"].to_numpy())).all()
    five = labels.filter(pl.col("horizon") == 5)
    assert five.height == len(c) - 5
    ts = aapl.sort("ts")["ts"]
    assert (five["known_at"] == ts[5:]).all()  # a label is known when its end bar is


def test_a_split_inside_the_horizon_is_not_a_return(aapl, lean_actions):
    raw = make_labels(aapl, SPEC).filter(pl.col("horizon") == 1)
    adj = make_labels(aapl, SPEC, lean_actions).filter(pl.col("horizon") == 1)
    day = pl.col("ts").dt.date() == datetime(2014, 6, 6).date()
    assert raw.filter(day)["log_return"][0] == pytest.approx(np.log(1 / 7), abs=0.05)
    assert abs(adj.filter(day)["log_return"][0]) < 0.05


def test_tick_spec_and_vol_scaled_spec():
    assert tick_label_spec().horizons == (1, 5, 10, 30, 60, 120, 300, 600)
    with pytest.raises(ConfigError, match="vol_column"):
        LabelSpec("x", "1d", (1,), Discretizer.returns(vol_scaled=True, ref_vol=50.0))


def test_training_set_joins_as_of_known_at(aapl):
    # every bar becomes known two days late: the feature row of day t is usable only from t + 2
    late = aapl.with_columns((pl.col("ts") + pl.duration(days=2)).alias("known_at"))
    feats = bar_features(late)
    labels = make_labels(aapl, SPEC)
    ts = training_set(feats, labels, datetime(2014, 1, 1, tzinfo=UTC), datetime(2014, 12, 1, tzinfo=UTC))
    assert ts.height > 0 and (ts["known_at_bar_v1"] <= ts["ts"]).all()
    assert (ts["ts_bar_v1"] < ts["ts"]).all()  # never the same bar: it was not known yet
    assert ts["ts"].min() >= datetime(2014, 1, 1, tzinfo=UTC) and ts["ts"].max() < datetime(2014, 12, 1, tzinfo=UTC)
    x, y, keys = to_arrays(ts, ("ret_1", "rsi_14", "ema_10"), (1, 5))
    assert x.shape[1] == 3 and y.shape[1] == 2 and x.shape[0] == y.shape[0] == keys.height > 100


def test_labels_never_leak_into_features(aapl):
    feats = bar_features(aapl)
    labels = make_labels(aapl, SPEC)
    base = training_set(feats, labels)
    # scrambling the labels changes only the label columns
    scrambled = labels.with_columns(pl.col("log_return").shuffle(seed=1), pl.col("bucket").shuffle(seed=1))
    other = training_set(feats, scrambled)
    label_cols = ["log_return", "bucket"]
    assert_frame_equal(base.drop(label_cols), other.drop(label_cols))
    # the features at a decision time are the same whether or not the future (the label) exists
    t = datetime(2014, 3, 3, 21, tzinfo=UTC)
    cut = bar_features(aapl.filter(pl.col("ts") <= t))
    row = base.filter(pl.col("ts") == t, pl.col("horizon") == 5)
    names = [c for c in cut.columns if c not in ("symbol_id", "tf", "ts", "known_at", "feature_set")]
    assert row.select(names).rows() == cut.filter(pl.col("ts") == t).select(names).rows()
    with pytest.raises(TableError, match="label columns"):
        training_set(feats.with_columns(pl.lit(0.0).alias("log_return")), labels)


def test_vol_scaled_labels_bucket_in_units_of_the_row_vol(aapl):
    rv = bar_features(aapl, "bar_v1", ("rv_21",)).select("symbol_id", "ts", "rv_21")
    bars = aapl.join(rv, on=["symbol_id", "ts"])
    d = Discretizer.returns(vol_scaled=True, ref_vol=20.0)
    labels = make_labels(bars, LabelSpec("t_vol", "1d", (1, 4), d, vol_column="rv_21"))
    assert labels["vol"].null_count() == 0 and labels.height > 0
    four = labels.filter(pl.col("horizon") == 4)
    row = four.row(10, named=True)
    per_bar = bars.filter(pl.col("ts") == row["ts"])["rv_21"][0]
    assert row["vol"] == pytest.approx(per_bar * 2 * 1e4)  # horizon vol = per-bar vol x sqrt(4), in bps
    z = row["log_return"] * 1e4 * 20.0 / row["vol"]
    assert row["bucket"] == Discretizer.returns().bucket(np.array([z / 1e4]))[0]
