"""LightGBM over coarse classes when nearly every label is the zero bucket (mid-quote returns at 1 s)."""

import numpy as np

from training.models.base import Buckets, default_edges_bps
from training.models.lightgbm_buckets import LightGBMBuckets, LightGBMConfig


def test_two_coarse_classes_fit_and_spread_back():
    """With ~97 % of labels in one bucket every quantile cut is that bucket: two classes, which the
    multiclass objective refuses ("Number of classes should be ... greater than 1") in the sklearn wrapper."""
    buckets = Buckets(default_edges_bps(101, -50, 50))
    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 8, 3)).astype(np.float32)
    y = np.full((600, 2), 50)
    y[:10, 0], y[10:20, 0] = 40, 60  # horizon 0: 97 % zero bucket
    y[:, 1] = rng.integers(0, 101, 600)  # horizon 1: many classes
    p = LightGBMBuckets(buckets, LightGBMConfig(n_estimators=20)).fit(X, y).predict_proba(X)
    assert p.shape == (600, 2, 101)
    np.testing.assert_allclose(p.sum(-1), 1.0, atol=1e-9)
    assert p[:, 0, 50].mean() > 0.8  # the zero bucket keeps its mass
