"""Option-chain features (simulated Black-Scholes chain with a known smile) and futures curve features (real LEAN ES)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from feature_store.curve import CURVE_V1, curve_features
from feature_store.options import OPTIONS_V1, chain_features, options_features
from lakehouse.sources.sim_options import implied_vol, option_chain

DAY = date(2026, 1, 6)
TS = datetime(2026, 1, 6, 21, tzinfo=UTC)


def _chain(day: date = DAY, spot: float = 100.0) -> pl.DataFrame:
    ts = int(datetime(day.year, day.month, day.day, 21, tzinfo=UTC).timestamp() * 1e9)
    return option_chain(np.random.default_rng(1), "SIM1:SIM", ts, day, spot, 0.30, 0.20, 0.0)


def test_chain_features_recover_the_simulated_surface():
    chain = _chain()
    f = chain_features(chain).row(0, named=True)
    atm7 = implied_vol(0.30, 0.20, np.array([7 / 365]), np.array([0.0]))[0]
    atm14 = implied_vol(0.30, 0.20, np.array([14 / 365]), np.array([0.0]))[0]
    assert f["atm_iv"] == pytest.approx(atm7, abs=2e-3)
    assert f["iv_term_slope"] == pytest.approx(atm14 - atm7, abs=3e-3) and f["iv_term_slope"] < 0  # vol reverts down
    assert f["iv_skew_25d"] > 0  # negative SKEW: puts richer than calls
    puts, calls = chain.filter(pl.col("right") == "P"), chain.filter(pl.col("right") == "C")
    assert f["pc_volume_ratio"] == pytest.approx(puts["volume"].sum() / calls["volume"].sum())
    assert f["pc_oi_ratio"] == pytest.approx(puts["open_interest"].sum() / calls["open_interest"].sum())
    assert f["gamma_oi"] == pytest.approx((chain["gamma"] * chain["open_interest"]).sum())


def test_options_features_use_the_last_chain_known_at_each_bar():
    days = [DAY + timedelta(days=i) for i in range(-30, 5)]
    close = 100 * np.exp(np.cumsum(np.random.default_rng(2).normal(0, 0.01, len(days))))
    ts = [datetime(d.year, d.month, d.day, 21, tzinfo=UTC) for d in days]
    bars = pl.DataFrame(
        {
            "symbol_id": "SIM1:SIM",
            "ts": ts,
            "known_at": ts,
            "open": close,
            "high": close,
            "low": close,
            "close": close,
            "volume": 1e6,
        }
    ).with_columns(pl.col("ts", "known_at").cast(pl.Datetime("ns", "UTC")))
    chains = pl.concat([_chain(), _chain(DAY + timedelta(days=2), 120.0)])
    feats = options_features(bars, chains)
    assert feats.columns[5:] == list(OPTIONS_V1.names)
    assert feats["ts"].min() == TS  # no row before the first chain is known
    first = chain_features(chains).row(0, named=True)
    day1 = feats.filter(pl.col("ts") == TS + timedelta(days=1)).row(0, named=True)
    assert day1["atm_iv"] == first["atm_iv"]  # still the chain of the day before
    assert day1["iv_minus_rv"] is not None and (feats["known_at"] >= feats["ts"]).all()


@pytest.fixture(scope="module")
def es(shared_data):
    from lakehouse.sources.lean_reference import Params, batches

    p = Params(root=shared_data / "lean", equities=False, futures=["cme/es"], kinds=["trade"], resolutions=["daily"])
    bars, defs = [], []
    for b in batches(p):
        for c in b.chunks:
            (bars if c.table.qualified == "bronze.bars" else defs).append(c.data.drop("_row", "_raw", strict=False))
    return pl.concat(bars).with_columns(pl.col("ts").alias("known_at")), pl.concat(defs)


def test_curve_features_on_real_es_contracts(es):
    bars, defs = es
    curve = curve_features(bars, defs)
    assert curve.columns[5:] == list(CURVE_V1.names) and curve.height > 0
    row = curve.drop_nulls("curve_slope").row(0, named=True)
    on_day = (
        bars.filter(pl.col("ts") == row["ts"])
        .join(defs.select(pl.col("contract").alias("symbol_id"), "expiry"), on="symbol_id")
        .filter(pl.col("expiry") > row["ts"].date())
        .sort("expiry")
    )
    f1, f2 = on_day["close"][0], on_day["close"][1]
    assert row["curve_slope"] == pytest.approx(np.log(f2 / f1), abs=1e-12)
    t = (on_day["expiry"][1] - on_day["expiry"][0]).days / 365.25
    assert row["curve_carry"] == pytest.approx(-np.log(f2 / f1) / t, rel=1e-9)
    assert (curve["curve_days_f1"].drop_nulls() > 0).all()
