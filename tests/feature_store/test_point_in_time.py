"""No look-ahead: changing or deleting any input after t leaves every bar, cross-section and regime feature at t unchanged.

Hypothesis picks the cut t and the change (prices, volumes, deleted bars, a late corporate action) on
real LEAN AAPL daily bars around its 2014 7:1 split, and features are computed point in time
(``feature_store.pit_prices``), so corporate actions are inputs too.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feature_store.bars.compute import bar_features
from feature_store.featurize import compute_set
from feature_store.pit_prices import pit_features
from feature_store.registry import get

NAMES = get("bar_v1").names


@pytest.fixture(scope="module")
def window(lean_daily, lean_actions):
    bars = lean_daily.filter(
        pl.col("symbol_id") == "AAPL:US",
        pl.col("ts").is_between(datetime(2013, 9, 1, tzinfo=UTC), datetime(2014, 12, 31, tzinfo=UTC)),
    )
    acts = lean_actions.filter(pl.col("symbol_id") == "AAPL:US", pl.col("ex_date") <= date(2014, 12, 31))
    return bars, acts, pit_features(bars, acts, bar_features)


def _mutate(bars: pl.DataFrame, acts: pl.DataFrame, t: datetime, kind: str, factor: float):
    after = pl.col("ts") > t
    if kind == "prices":
        scaled = [
            pl.when(after).then(pl.col(c) * factor).otherwise(pl.col(c)).alias(c)
            for c in ("open", "high", "low", "close")
        ]
        return bars.with_columns(scaled), acts
    if kind == "volume":
        return bars.with_columns(pl.when(after).then(pl.col("volume") * factor).otherwise(pl.col("volume"))), acts
    if kind == "delete":
        return bars.filter(~after), acts
    # a corporate action learned after t (its known_at is after t; its ex-date may be before t)
    late = pl.DataFrame(
        {
            "symbol_id": "AAPL:US",
            "ex_date": (t - timedelta(days=20)).date(),
            "kind": "split",
            "ratio": factor,
            "amount": None,
            "known_at": t + timedelta(days=1),
        },
        schema_overrides={"amount": pl.Float64, "known_at": pl.Datetime("ns", "UTC")},
    )
    return bars, pl.concat([acts.select(late.columns), late])


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    i=st.integers(min_value=70, max_value=330),
    kind=st.sampled_from(["prices", "volume", "delete", "action"]),
    factor=st.floats(min_value=0.5, max_value=3.0).filter(lambda f: abs(f - 1) > 1e-3),
)
def test_no_bar_feature_sees_the_future(window, i, kind, factor):
    bars, acts, base = window
    t = bars["ts"][i]
    changed_bars, changed_acts = _mutate(bars, acts, t, kind, factor)
    other = pit_features(changed_bars, changed_acts, bar_features)
    upto = pl.col("ts") <= t
    a, b = base.filter(upto), other.filter(upto)
    assert a.height == b.height == i + 1
    for name in NAMES:
        assert a[name].equals(b[name]), f"{name} at or before {t} changed after a {kind} change after t"
    assert (a["known_at"] == b["known_at"]).all()


def test_the_split_is_applied_only_once_known_and_in_effect(window):
    bars, acts, base = window
    row = base.filter(pl.col("ts").dt.date() == date(2014, 6, 9))
    before = base.filter(pl.col("ts").dt.date() == date(2014, 6, 6))
    assert abs(row["ret_1"][0]) < 0.05  # the 7:1 split is not a -195% return
    assert before["ema_10"][0] / row["ema_10"][0] == pytest.approx(7, rel=0.05)  # the day before: old basis
    raw = bars.filter(pl.col("ts").dt.date() == date(2014, 6, 9))
    assert row["donchian_high_20"][0] >= raw["high"][0]  # the bar at t is never adjusted


@pytest.fixture(scope="module")
def universe(lean_daily, lean_actions):
    names = ["AAPL:US", "IBM:US", "SPY:US", "BAC:US"]
    bars = lean_daily.filter(
        pl.col("symbol_id").is_in(names),
        pl.col("ts").is_between(datetime(2013, 6, 1, tzinfo=UTC), datetime(2014, 9, 30, tzinfo=UTC)),
    )
    acts = lean_actions.filter(pl.col("symbol_id").is_in(names), pl.col("ex_date") <= date(2014, 9, 30))
    return bars, acts, {s: compute_set(s, bars, acts) for s in ("xs_v1", "regime_v1")}


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    feature_set=st.sampled_from(["xs_v1", "regime_v1"]),
    i=st.integers(min_value=260, max_value=320),
    kind=st.sampled_from(["prices", "delete", "action"]),
    factor=st.floats(min_value=0.5, max_value=3.0).filter(lambda f: abs(f - 1) > 1e-3),
)
def test_no_cross_section_or_regime_feature_sees_the_future(universe, feature_set, i, kind, factor):
    bars, acts, base = universe
    t = bars.filter(pl.col("symbol_id") == "AAPL:US")["ts"][i]
    changed_bars, changed_acts = _mutate(bars, acts, t, kind, factor)
    other = compute_set(feature_set, changed_bars, changed_acts)
    upto = pl.col("ts") <= t
    a, b = base[feature_set].filter(upto).sort("symbol_id", "ts"), other.filter(upto).sort("symbol_id", "ts")
    assert a.height == b.height
    for name in get(feature_set).names:
        assert a[name].equals(b[name]), f"{feature_set}.{name} at or before {t} changed after a {kind} change"
