"""Discretizers: SPECS return buckets, clipping, Gaussian soft labels, vol scaling, IV/RV/volume edges."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from core.errors import ConfigError
from core.strategy import Buckets
from feature_store.discretize import Discretizer, vol_discretizer


def test_specs_buckets_match_the_strategy_and_model_edges():
    d = Discretizer.from_buckets(Buckets())
    assert d.k == 101 and np.allclose(d.edges, np.arange(-50.5, 51.0, 1.0))
    assert d.mids[0] == pytest.approx(-50.0) and d.mids[50] == pytest.approx(0.0) and d.mids[-1] == pytest.approx(50.0)


@pytest.mark.parametrize(
    ("log_return", "bucket"),
    [(0.0, 50), (0.00004, 50), (0.00006, 51), (-0.0050, 0), (-1.0, 0), (0.0050, 100), (3.0, 100), (0.00049, 55)],
)
def test_bucket_and_edge_clipping(log_return, bucket):
    assert Discretizer.returns().bucket(np.array([log_return]))[0] == bucket


def test_soft_labels_are_gaussian_mass_per_bucket():
    d = Discretizer.returns()
    x = np.array([0.0, 0.0012, -0.02])
    soft = d.soft(x, sigma=3.0)
    assert soft.shape == (3, 101) and np.allclose(soft.sum(axis=1), 1.0)
    e = np.asarray(d.edges)
    assert soft[0, 50] == pytest.approx(norm.cdf(e[51], 0, 3) - norm.cdf(e[50], 0, 3))
    assert soft[1].argmax() == d.bucket(x[1:2])[0]
    assert soft[2, 0] > 0.99  # the tail folds into the end bucket


def test_vol_scaled_edges():
    d = Discretizer.returns(vol_scaled=True, ref_vol=10.0)
    # a 20 bps move when the horizon vol is 40 bps is half a sigma: 5 bps at the reference vol
    assert (
        d.bucket(np.array([0.0020]), vol=np.array([40.0]))[0]
        == Discretizer.returns().bucket(np.array([0.0005]))[0]
        == 55
    )
    with pytest.raises(ConfigError, match="per-row vol"):
        d.bucket(np.array([0.001]))


def test_iv_rv_and_volume_discretizers_round_trip():
    iv = vol_discretizer(2.0, 40)
    assert list(iv.bucket(np.array([0.0, 0.26, 5.0]))) == [0, 5, 39]
    rng = np.random.default_rng(1)
    vol = Discretizer.quantiles(rng.lognormal(10, 1, 5000), 10, "log_volume", log=True)
    counts = np.bincount(vol.bucket(np.log1p(rng.lognormal(10, 1, 5000))), minlength=10)
    assert counts.min() > 350  # quantile edges fitted on one sample give near-equal buckets on another
    assert Discretizer.from_json(vol.to_json()) == vol


@pytest.mark.parametrize("edges", [(1.0, 2.0), (0.0, 2.0, 1.0), (0.0, float("nan"), 1.0)])
def test_bad_edges_are_refused(edges):
    with pytest.raises(ConfigError):
        Discretizer(edges)
