"""Regime (BOCPD, forward-filtered HMM) and cross-sectional ranks on real LEAN daily bars."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import numpy as np
import polars as pl
import pytest
from scipy.stats import rankdata

from feature_store.cross_section import XS_V1, cross_section_features
from feature_store.regime import CFG, REGIME_V1, bocpd, regime_features

SMALL = replace(CFG, min_train=150, refit=100, train_window=300, max_run=120, n_iter=20)


@pytest.fixture(scope="module")
def spy(lean_daily) -> pl.DataFrame:
    return lean_daily.filter(
        pl.col("symbol_id") == "SPY:US",
        pl.col("ts").is_between(datetime(2007, 6, 1, tzinfo=UTC), datetime(2009, 6, 1, tzinfo=UTC)),
    )


def test_bocpd_finds_a_variance_break():
    rng = np.random.default_rng(3)
    x = np.concatenate([[np.nan], rng.normal(0, 0.005, 200), rng.normal(0, 0.03, 100)])
    out = bocpd(x, replace(CFG, max_run=150))
    assert np.isnan(out[:20, 0]).all()
    assert out[195, 0] > 100  # a long calm run before the break
    assert out[215, 0] < 30  # the run restarted at the break (t = 201)
    assert out[-1, 2] > out[195, 2]  # the detected change shortens the expected run: hazard rises


def test_regime_features_are_forward_only_and_probabilities(spy):
    feats = regime_features(spy, SMALL)
    assert feats.columns[5:] == list(REGIME_V1.names) and feats.height == spy.height
    probs = feats.select("hmm_p_low", "hmm_p_mid", "hmm_p_high").drop_nulls().to_numpy()
    assert len(probs) == spy.height - SMALL.min_train and np.allclose(probs.sum(axis=1), 1.0)
    crisis = feats.filter(pl.col("ts").is_between(datetime(2008, 10, 1, tzinfo=UTC), datetime(2008, 12, 1, tzinfo=UTC)))
    assert crisis["hmm_p_high"].mean() > 0.5  # autumn 2008 is the high-variance state
    t = 320
    cut = regime_features(spy.head(t + 1), SMALL)
    for name in REGIME_V1.names:  # filtered, not smoothed: the future does not change the past
        assert cut[name].equals(feats[name].head(t + 1)), name


def test_cross_section_ranks(lean_daily):
    bars = lean_daily.filter(
        pl.col("ts").is_between(datetime(2013, 1, 1, tzinfo=UTC), datetime(2014, 1, 1, tzinfo=UTC))
    )
    xs = cross_section_features(bars)
    assert xs.columns[5:] == list(XS_V1.names)
    day = xs.filter(pl.col("ts") == xs["ts"].max()).sort("symbol_id")
    last = bars.filter(pl.col("ts") <= xs["ts"].max()).sort("symbol_id", "ts")
    mom = last.group_by("symbol_id", maintain_order=True).agg(
        (pl.col("close").log().last() - pl.col("close").log().shift(21).last()).alias("m")
    )
    m = mom.join(day.select("symbol_id", "mom_rank_21"), on="symbol_id").drop_nulls()
    expected = (rankdata(m["m"]) - 1) / (len(m) - 1)
    np.testing.assert_allclose(m["mom_rank_21"], expected, atol=1e-12)
    assert day["lowvol_rank_63"].drop_nulls().is_between(0, 1).all()
    assert (xs["known_at"] >= xs["ts"]).all()
