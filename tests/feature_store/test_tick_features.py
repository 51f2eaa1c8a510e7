"""The tick feature set tick_v1 on small synthetic 1s bars: values against numpy, point in time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from core.errors import ContractError
from feature_store.tick_features import (
    FEATURE_NAMES,
    FEATURE_SET,
    GOLD_TICK_FEATURES,
    TickFeatureConfig,
    check_model_features,
    feature_updates,
    features_from_silver,
    quote_seconds,
    second_grid,
    tick_features,
    write_features,
)
from training.onnx_export import read_metadata

TS = pl.Datetime("ns", "UTC")
T0 = datetime(2026, 1, 5, 14, 30, 1, tzinfo=UTC)
N = 400
CFG = TickFeatureConfig()


def _bars(n: int = N, seed: int = 3, missing: tuple[int, ...] = (17, 18, 250)) -> pl.DataFrame:
    """1 s consensus bars of one symbol: a random walk on a 1-cent grid, some seconds without a bar."""
    rng = np.random.default_rng(seed)
    close = np.round(100 * np.exp(np.cumsum(rng.normal(0, 2e-4, n))), 2)
    ts = [T0 + timedelta(seconds=i) for i in range(n)]
    frame = pl.DataFrame(
        {
            "symbol_id": "SIM1:SIM",
            "tf": "1s",
            "ts": ts,
            "known_at": [t + timedelta(milliseconds=int(x)) for t, x in zip(ts, rng.integers(5, 80, n))],
            "close": close,
            "volume": rng.integers(0, 500, n).astype(float),
            "n_trades": rng.integers(0, 6, n),
        }
    ).with_columns(pl.col("ts", "known_at").cast(TS))
    return frame.filter(~pl.int_range(pl.len()).is_in(list(missing)))


def _filled(bars: pl.DataFrame) -> dict[str, np.ndarray]:
    """The same bars on a full 1 s grid, carried forward with numpy (the reference)."""
    idx = ((bars["ts"].dt.epoch("ns") - bars["ts"].dt.epoch("ns").min()) // 1_000_000_000).to_numpy()
    n = idx.max() + 1
    close = np.full(n, np.nan)
    volume, trades = np.zeros(n), np.zeros(n)
    close[idx], volume[idx], trades[idx] = bars["close"], bars["volume"], bars["n_trades"]
    for i in range(1, n):
        if np.isnan(close[i]):
            close[i] = close[i - 1]
    return {"close": close, "volume": volume, "n_trades": trades}


def test_values_match_numpy():
    bars = _bars()
    feats = features_from_silver(bars)
    ref = _filled(bars)
    lp = np.log(ref["close"])
    r1 = np.concatenate([[np.nan], np.diff(lp)])
    assert feats.height == len(lp) and feats.columns[5:] == list(FEATURE_NAMES)
    np.testing.assert_allclose(feats["ret_1s"], np.nan_to_num(r1), atol=1e-12)
    for n, name in ((5, "ret_5s"), (30, "ret_30s"), (120, "ret_120s")):
        expected = np.array([lp[i] - lp[max(i - n, 0)] for i in range(len(lp))])
        np.testing.assert_allclose(feats[name], expected, atol=1e-12)
    for n, name in ((60, "rv_60s_ann"), (300, "rv_300s_ann")):
        sq = r1**2
        expected = [
            np.sqrt(np.nanmean(sq[max(i - n + 1, 0) : i + 1]) * CFG.year_seconds) if i else 0.0 for i in range(len(lp))
        ]
        np.testing.assert_allclose(feats[name], expected, rtol=1e-9)
    sign = np.sign(np.nan_to_num(np.diff(ref["close"], prepend=ref["close"][0])))
    for i in range(1, len(sign)):  # tick rule: an unchanged price keeps the last direction
        sign[i] = sign[i] or sign[i - 1]
    sv, v = sign * ref["volume"], ref["volume"]
    w = CFG.flow_window
    expected = [
        sv[max(i - w + 1, 0) : i + 1].sum() / v[max(i - w + 1, 0) : i + 1].sum()
        if v[max(i - w + 1, 0) : i + 1].sum() > 0
        else 0.0
        for i in range(len(v))
    ]
    np.testing.assert_allclose(feats["trade_imbalance"], expected, atol=1e-12)
    k = CFG.intensity_window
    expected = [ref["n_trades"][max(i - k + 1, 0) : i + 1].mean() for i in range(len(v))]
    np.testing.assert_allclose(feats["trade_intensity"], expected, rtol=1e-12)
    notional = ref["close"] * v
    np.testing.assert_allclose(
        feats["adv_notional"], np.cumsum(notional) / np.arange(1, len(v) + 1) * CFG.day_seconds, rtol=1e-12
    )
    # no quotes: the quote features are 0, and every value is finite
    assert (feats["spread_bps"] == 0).all() and (feats["quote_intensity"] == 0).all()
    assert np.isfinite(feats.select(FEATURE_NAMES).to_numpy()).all()


def test_quote_features_use_the_median_vendor_quote():
    ts = [
        T0 - timedelta(milliseconds=600),
        T0 - timedelta(milliseconds=300),
        T0 - timedelta(milliseconds=100),
        T0 - timedelta(milliseconds=50),
    ]
    quotes = pl.DataFrame(
        {
            "source": ["a", "a", "b", "c"],
            "symbol_id": "SIM1:SIM",
            "ts": ts,
            "bid": [99.0, 99.98, 99.99, 99.97],
            "bid_size": [100.0, 300.0, 100.0, 500.0],
            "ask": [101.0, 100.02, 100.01, 100.03],
            "ask_size": [100.0, 100.0, 300.0, 100.0],
        }
    ).with_columns(pl.col("ts").cast(TS))
    per_second = quote_seconds(quotes)
    assert per_second.height == 1 and per_second["ts"][0] == T0  # a quote belongs to the second it ends in
    row = per_second.row(0, named=True)
    assert (row["bid"], row["ask"], row["bid_size"], row["ask_size"]) == (99.98, 100.02, 300.0, 100.0)
    assert row["n_quotes"] == pytest.approx(4 / 3)
    feats = features_from_silver(_bars(n=20, missing=()), quotes)
    first, later = feats.row(0, named=True), feats.row(19, named=True)
    assert first["spread_bps"] == pytest.approx(1e4 * 0.04 / 100.0)
    assert first["book_imbalance"] == pytest.approx(0.5)
    assert later["spread_bps"] == first["spread_bps"]  # the last quote is carried forward
    assert later["quote_intensity"] == 0.0  # ...but no new quotes in the last 10 s


def test_point_in_time_a_later_bar_never_changes_earlier_rows():
    bars = _bars()
    cut = T0 + timedelta(seconds=200)
    base = features_from_silver(bars)
    changed = bars.with_columns(
        pl.when(pl.col("ts") > cut).then(pl.col("close") * 1.05).otherwise(pl.col("close")).alias("close"),
        pl.when(pl.col("ts") > cut).then(pl.col("volume") * 3).otherwise(pl.col("volume")).alias("volume"),
    )
    truncated = bars.filter(pl.col("ts") <= cut)
    early = pl.col("ts") <= cut
    for other in (features_from_silver(changed), features_from_silver(truncated)):
        assert_frame_equal(other.filter(early), base.filter(early))
    assert not features_from_silver(changed).filter(~early).equals(base.filter(~early))


def test_known_at_is_a_running_max_never_before_ts():
    bars = _bars()
    late = bars.with_columns(
        pl.when(pl.col("ts") == T0 + timedelta(seconds=50))
        .then(pl.col("ts") + timedelta(seconds=3))
        .otherwise(pl.col("known_at"))
        .alias("known_at")
    )
    grid = second_grid(late)
    known = grid["known_at"]
    assert (known >= grid["ts"]).all() and known.is_sorted()
    # the late bar holds back the rows after it until it is known
    assert grid.filter(pl.col("ts") == T0 + timedelta(seconds=51))["known_at"][0] == T0 + timedelta(seconds=53)


def test_series_break_at_day_boundaries():
    day1, day2 = (
        _bars(n=50, missing=()),
        _bars(n=50, seed=4, missing=()).with_columns((pl.col("ts", "known_at") + timedelta(days=1)).cast(TS)),
    )
    feats = tick_features(second_grid(pl.concat([day1, day2])))
    assert feats.height == 100  # no overnight grid
    opening = feats.filter(pl.col("ts") == T0 + timedelta(days=1)).row(0, named=True)
    assert opening["ret_1s"] == 0.0 and opening["ret_120s"] == 0.0  # the overnight move is not a 1 s return


def test_registry_matches_the_fixture_model_and_the_gold_table():
    from core.resources import contracts_dir

    meta = read_metadata(contracts_dir() / "models" / "tick_tiny" / "v2" / "tick_tiny.onnx")
    check_model_features(meta.feature_set, meta.feature_names)
    with pytest.raises(ContractError, match="registry tick_v1"):
        check_model_features(FEATURE_SET, tuple(reversed(FEATURE_NAMES)))
    assert [c for c in GOLD_TICK_FEATURES.column_names if c in FEATURE_NAMES] == list(FEATURE_NAMES)


def test_updates_carry_registry_order_and_per_symbol_seq():
    two = pl.concat(
        [_bars(n=30, missing=()), _bars(n=30, seed=5, missing=()).with_columns(pl.lit("SIM2:SIM").alias("symbol_id"))]
    )
    feats = features_from_silver(two)
    updates = list(feature_updates(feats))
    assert len(updates) == 60 and [u.ts for u in updates] == sorted(u.ts for u in updates)
    sim2 = [u for u in updates if u.symbol_id == "SIM2:SIM"]
    assert [u.seq for u in sim2] == list(range(30))
    row = feats.filter(pl.col("symbol_id") == "SIM2:SIM").row(29, named=True)
    np.testing.assert_allclose(sim2[-1].values, [row[n] for n in FEATURE_NAMES], rtol=1e-6)
    for u in updates:
        u.check()


def test_write_features_is_idempotent(lake):
    feats = features_from_silver(_bars(n=60, missing=()))
    write_features(lake, feats)
    write_features(lake, feats)
    stored = lake.read(GOLD_TICK_FEATURES).sort("ts")
    assert stored.height == 60
    assert_frame_equal(stored.select(feats.columns), feats, check_dtypes=False)
