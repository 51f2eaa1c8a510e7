"""Bar features on real LEAN daily bars: TA-Lib parity, hand-checked values, warm-up nulls."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import talib

from core.errors import TableError
from feature_store.bars.compute import BUILDERS, bar_features
from feature_store.registry import get

SYMBOLS = ("AAPL:US", "SPY:US", "BAC:US", "IBM:US")


@pytest.fixture(scope="module")
def four(lean_daily) -> pl.DataFrame:
    return lean_daily.filter(pl.col("symbol_id").is_in(SYMBOLS))


@pytest.fixture(scope="module")
def feats(four) -> pl.DataFrame:
    return bar_features(four)


def _talib(bars: pl.DataFrame) -> dict[str, np.ndarray]:
    h, lo, c = (bars[x].to_numpy().astype(np.float64) for x in ("high", "low", "close"))
    return {
        "rsi_14": talib.RSI(c, 14),
        "atr_14": talib.ATR(h, lo, c, 14),
        "ema_10": talib.EMA(c, 10),
        "ema_20": talib.EMA(c, 20),
        "ema_50": talib.EMA(c, 50),
        "donchian_high_20": talib.MAX(h, 20),
        "donchian_low_20": talib.MIN(lo, 20),
    }


@pytest.mark.parametrize("symbol", SYMBOLS)
def test_talib_parity_on_real_bars(four, feats, symbol):
    bars = four.filter(pl.col("symbol_id") == symbol).sort("ts")
    mine = feats.filter(pl.col("symbol_id") == symbol).sort("ts")
    assert bars.height > 1000 and mine.height == bars.height
    for name, ref in _talib(bars).items():
        got = mine[name].to_numpy().astype(np.float64)
        assert np.array_equal(np.isnan(ref), np.isnan(got)), f"{symbol} {name}: warm-up differs"
        worst = np.nanmax(np.abs(got - ref))
        assert worst <= 1e-9, f"{symbol} {name}: |mine - talib| = {worst:g}"


def test_every_registered_bar_feature_has_a_builder_and_a_column(feats):
    names = get("bar_v1").names
    assert set(names) <= set(BUILDERS)
    assert feats.columns == ["symbol_id", "tf", "ts", "known_at", "feature_set", *names]
    assert all(feats.schema[n] == pl.Float64 for n in names)
    last = feats.group_by("symbol_id").agg(pl.all().sort_by("ts").last())
    assert last.select(names).null_count().sum_horizontal().item() == 0  # no nulls once warmed up


def test_values_against_numpy(four, feats):
    bars = four.filter(pl.col("symbol_id") == "SPY:US").sort("ts")
    f = feats.filter(pl.col("symbol_id") == "SPY:US").sort("ts")
    c, v = bars["close"].to_numpy(), bars["volume"].to_numpy()
    lp = np.log(c)
    r = np.diff(lp, prepend=np.nan)
    i = 500
    assert f["ret_21"][i] == pytest.approx(lp[i] - lp[i - 21], abs=1e-12)
    assert f["ret_std_21"][i] == pytest.approx(np.std(r[i - 20 : i + 1], ddof=1), rel=1e-9)
    assert f["rv_63"][i] == pytest.approx(np.sqrt(np.mean(r[i - 62 : i + 1] ** 2)), rel=1e-9)
    w = v[i - 20 : i + 1]
    assert f["volume_z_21"][i] == pytest.approx((v[i] - w.mean()) / w.std(ddof=1), rel=1e-9)
    assert f["adv_share_21"][i] == pytest.approx(v[i] / w.mean(), rel=1e-9)
    s2 = r[1] ** 2
    for x in r[2 : i + 1]:
        s2 = 0.94 * s2 + 0.06 * x**2
    assert f["ewma_vol"][i] == pytest.approx(np.sqrt(s2), rel=1e-9)
    assert f["ret_63"][62] is None and f["ret_63"][63] is not None  # warm-up is null, not 0
    assert (f["known_at"] >= f["ts"]).all() and f["known_at"].is_sorted()
    assert 0 <= f["donchian_pos_20"].drop_nulls().min() and f["donchian_pos_20"].drop_nulls().max() <= 1
    assert f["spread_bps_21"].drop_nulls().min() >= 0


def test_duplicate_bars_are_refused(four):
    with pytest.raises(TableError, match="one bar per"):
        bar_features(pl.concat([four.head(5), four.head(5)]))
