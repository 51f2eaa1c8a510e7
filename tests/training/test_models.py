"""Every model honours the interface and learns the synthetic market's signal (beats climatology out of sample)."""

import numpy as np
import pytest

from training.metrics import log_score_per_sample
from training.models.base import Buckets, DistributionModel, Exportable, default_edges_bps
from training.models.climatology import Climatology
from training.models.ensemble import Ensemble, EnsembleConfig
from training.models.ewma_t import EwmaT
from training.models.garch_t import GarchT, GarchTConfig
from training.models.lightgbm_buckets import LightGBMBuckets, LightGBMConfig
from training.synthetic import SyntheticConfig, oracle_proba, simulate

BUCKETS = Buckets(default_edges_bps(41, -20, 20))


@pytest.fixture(scope="module")
def market():
    data = simulate(SyntheticConfig(n_steps=4000, lookback=16, horizons=(1, 4)), BUCKETS)
    n = int(len(data.y) * 0.6)
    return data, slice(0, n), slice(n + 8, None)  # 8 > longest horizon: no label overlap


def _ls(p, y, h=0):
    return log_score_per_sample(p[:, h], y[:, h]).mean()


FACTORIES = {
    "ewma_t": lambda: EwmaT(BUCKETS),
    "garch_t": lambda: GarchT(BUCKETS, GarchTConfig(horizon_steps=(1, 4))),
    "lightgbm": lambda: LightGBMBuckets(BUCKETS, LightGBMConfig(n_estimators=40, learning_rate=0.1)),
}


@pytest.mark.parametrize("name", list(FACTORIES))
def test_model_shapes_and_it_beats_climatology(market, name):
    data, tr, te = market
    model = FACTORIES[name]()
    assert isinstance(model, DistributionModel)
    p = model.fit(data.X[tr], data.y[tr]).predict_proba(data.X[te])
    assert p.shape == (len(data.y[te]), 2, BUCKETS.k)
    np.testing.assert_allclose(p.sum(-1), 1.0, atol=1e-9)
    clim = Climatology(BUCKETS).fit(data.X[tr], data.y[tr]).predict_proba(data.X[te])
    assert _ls(p, data.y[te]) < _ls(clim, data.y[te]) - 0.02


def test_oracle_is_the_ceiling(market):
    data, tr, te = market
    o = oracle_proba(data, BUCKETS, n_paths=600)
    clim = Climatology(BUCKETS).fit(data.X[tr], data.y[tr]).predict_proba(data.X[te])
    ewma = EwmaT(BUCKETS).fit(data.X[tr], data.y[tr]).predict_proba(data.X[te])
    for h in range(2):
        assert _ls(o[te], data.y[te], h) < _ls(ewma, data.y[te], h) < _ls(clim, data.y[te], h)


def test_garch_variance_forecast_equals_arch(market):
    """Our window recursion and h-step sum equal arch's own forecast once the start value has decayed."""
    from arch import arch_model

    data, tr, _ = market
    model = GarchT(BUCKETS, GarchTConfig(horizon_steps=(1, 4))).fit(data.X[tr], data.y[tr])
    r = data.X[tr][:, -1, 0].astype(np.float64) * 1e4
    am = arch_model(r, mean="Zero", vol="GARCH", p=1, q=1, dist="t", rescale=False)
    p = model.params_
    res = am.fix([p["omega"], p["alpha"], p["beta"], p["nu"]])
    ref = res.forecast(horizon=4, reindex=False).variance.to_numpy()[-1]  # per-step variances of t+1..t+4
    ours = model.variance_forecast(r[None, :, None].astype(np.float32) * np.float32(1e-4))[0]
    np.testing.assert_allclose(ours, [ref[0], ref.sum()], rtol=1e-4)


def test_climatology_is_exportable_and_matches(market):
    import torch

    data, tr, te = market
    clim = Climatology(BUCKETS).fit(data.X[tr], data.y[tr])
    assert isinstance(clim, Exportable)
    out = clim.to_torch_module()(torch.from_numpy(data.X[te][:5])).numpy()
    np.testing.assert_allclose(out, clim.predict_proba(data.X[te][:5]), atol=1e-6)


@pytest.mark.parametrize("reward", ["log_score", "sharpe"])
def test_ensemble_bandit_weights_the_best_member_most(market, reward):
    data, tr, te = market
    n_val = len(data.y[tr]) // 3
    X_fit, y_fit = data.X[tr][:-n_val], data.y[tr][:-n_val]
    X_val, y_val = data.X[tr][-n_val:], data.y[tr][-n_val:]
    members = [
        Climatology(BUCKETS),
        EwmaT(BUCKETS),
        LightGBMBuckets(BUCKETS, LightGBMConfig(n_estimators=40, learning_rate=0.1)),
    ]
    ens = Ensemble(members, BUCKETS, EnsembleConfig(reward=reward, block=50, discount=1.0, refit_members=False))
    ens.fit(X_fit, y_fit, X_val=X_val, y_val=y_val)
    assert ens.weights_.sum() == pytest.approx(1.0)
    assert ens.weights_[0] < 0.25  # climatology has no signal
    if reward == "log_score":  # without forgetting, the most weight goes to the best validation log score
        val_ls = [np.mean([_ls(m.predict_proba(X_val), y_val, h) for h in range(2)]) for m in members]
        assert int(np.argmax(ens.weights_)) == int(np.argmin(val_ls))
    p = ens.predict_proba(data.X[te])
    np.testing.assert_allclose(p.sum(-1), 1.0, atol=1e-9)
    assert not isinstance(ens.members[1], Exportable)


def test_buckets_agree_with_golds_discretizer():
    from feature_store.discretize import Discretizer

    disc = Discretizer.returns()
    b = Buckets.from_discretizer(disc)
    assert b.k == 101 and np.allclose(b.edges_bps, Buckets.default().edges_bps)
    r = np.random.default_rng(0).standard_t(3, size=5000) * 20
    assert np.array_equal(b.index(r), disc.bucket(r * 1e-4))
