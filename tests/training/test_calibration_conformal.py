"""Calibration repairs a mis-calibrated forecaster; conformal bands cover as promised and match MAPIE."""

import numpy as np
import pytest
from scipy import stats

from training.calibration import ProbUpCalibrator, apply_temperature, fit_temperatures
from training.conformal import SplitConformal, aci, coverage, quantile_bps, split_quantile
from training.metrics import ece, log_score_per_sample, prob_up
from training.models.base import Buckets, default_edges_bps

BUCKETS = Buckets(default_edges_bps(41, -20, 20))


def _world(n, seed, drift=0.0):
    """Returns with a known Gaussian scale and drift (in scale units); (scale, r_bps, labels)."""
    rng = np.random.default_rng(seed)
    scale = rng.uniform(2, 6, size=(n, 2))
    r = rng.normal(size=(n, 2)) * scale + drift * scale
    return scale, r, BUCKETS.index(r)


def _drifting_world(n, seed):
    """Each sample's drift is known to the forecaster, which misreads it (biased and timid)."""
    rng = np.random.default_rng(seed)
    drift = rng.uniform(-0.6, 0.6, size=(n, 2))
    scale, r, _ = _world(n, seed + 100, drift)
    return scale, r, _forecast(scale, shift=0.4 * drift - 0.2)


def _forecast(scale, width=1.0, shift=0.0):
    return BUCKETS.from_cdf(
        lambda e: stats.norm.cdf(
            (e - np.broadcast_to(shift, scale.shape)[..., None] * scale[..., None]) / (width * scale[..., None])
        )
    )


def test_temperature_repairs_over_and_under_confidence():
    scale, r, y = _world(6000, 1)
    for width, expect in ((0.5, "> 1"), (2.0, "< 1")):
        p = _forecast(scale, width)
        t = fit_temperatures(p, y)
        assert np.all(t > 1.2) if expect == "> 1" else np.all(t < 0.8)
        fixed = apply_temperature(p, t)
        before = log_score_per_sample(p[:, 0], y[:, 0]).mean()
        after = log_score_per_sample(fixed[:, 0], y[:, 0]).mean()
        truth = log_score_per_sample(_forecast(scale)[:, 0], y[:, 0]).mean()
        assert after - truth < 0.25 * (before - truth)  # the end buckets hold clipped tails, so not exact
    assert np.allclose(apply_temperature(_forecast(scale), np.ones(2)), _forecast(scale), atol=1e-9)


@pytest.mark.parametrize("method", ["isotonic", "platt"])
def test_prob_up_calibration_lowers_ece_on_held_out_data(method):
    _, fit_r, biased_fit = _drifting_world(8000, 2)
    _, test_r, biased_test = _drifting_world(8000, 3)
    pu = lambda p: np.stack([prob_up(p[:, h], BUCKETS) for h in range(2)], axis=1)  # noqa: E731
    cal = ProbUpCalibrator(method).fit(pu(biased_fit), (fit_r > 0).astype(float))
    up = (test_r[:, 0] > 0).astype(float)
    before = ece(pu(biased_test)[:, 0], up)
    after = ece(cal.transform(pu(biased_test))[:, 0], up)
    assert before > 0.08 and after < 0.03
    reshaped = cal.apply_to_probs(biased_test, BUCKETS)  # the distribution now agrees with the calibrated P(up)
    target = cal.transform(pu(biased_test))
    reachable = (target > 0.01) & (target < 0.99)  # the bucket straddling zero keeps some mass on both sides
    assert reachable.mean() > 0.99
    np.testing.assert_allclose(pu(reshaped)[reachable], target[reachable], atol=1e-6)
    np.testing.assert_allclose(reshaped.sum(-1), 1.0, atol=1e-9)


def test_split_conformal_covers_within_tolerance():
    cal_scale, cal_r, _ = _world(4000, 4)
    test_scale, test_r, _ = _world(20000, 5)
    for width in (0.6, 1.0, 1.8):  # too narrow, right, too wide: conformal fixes all three
        sc = SplitConformal(BUCKETS, alpha=0.1).fit(_forecast(cal_scale, width), cal_r)
        lo, hi = sc.bands(_forecast(test_scale, width))
        cov = coverage(lo, hi, test_r)
        assert np.all(np.abs(cov - 0.9) < 0.015), (width, cov)
    base_lo = quantile_bps(_forecast(test_scale)[:, 0], BUCKETS, 0.05)
    np.testing.assert_allclose(
        base_lo, stats.norm.ppf(0.05) * test_scale[:, 0], atol=0.1
    )  # linear within 1-bps buckets


def test_split_quantile_equals_mapie_split_conformal_regressor():
    from mapie.regression import SplitConformalRegressor
    from sklearn.linear_model import LinearRegression

    rng = np.random.default_rng(6)
    X = rng.normal(size=(900, 2))
    yv = X @ [1.0, -2.0] + rng.standard_t(4, size=900)
    est = LinearRegression().fit(X[:300], yv[:300])
    mapie = SplitConformalRegressor(est, confidence_level=0.9, prefit=True).conformalize(X[300:600], yv[300:600])
    _, pis = mapie.predict_interval(X[600:])
    qhat = split_quantile(np.abs(yv[300:600] - est.predict(X[300:600])), 0.1)
    pred = est.predict(X[600:])
    np.testing.assert_allclose(pis[:, 0, 0], pred - qhat, rtol=1e-12)
    np.testing.assert_allclose(pis[:, 1, 0], pred + qhat, rtol=1e-12)


def test_aci_holds_coverage_under_drift_where_split_conformal_fails():
    rng = np.random.default_rng(7)
    n = 6000
    vol = np.where(np.arange(n) < n // 3, 2.0, 5.0)  # a volatility regime shift after calibration
    r = rng.normal(size=n) * vol
    lo, hi = np.full(n, -1.0), np.full(n, 1.0)  # a stale base interval that ignores the shift
    cal = slice(0, n // 3)
    q = split_quantile(np.maximum(lo[cal] - r[cal], r[cal] - hi[cal]), 0.1)
    live = slice(n // 3, n)
    split_cov = np.mean((r[live] >= lo[live] - q) & (r[live] <= hi[live] + q))
    alo, ahi, _ = aci(lo, hi, r, alpha=0.1, gamma=0.01, window=500)
    aci_cov = np.mean((r[live] >= alo[live]) & (r[live] <= ahi[live]))
    assert split_cov < 0.8 and abs(aci_cov - 0.9) < 0.02
    whole = np.round(r)  # the same on a 1 bp price lattice, with lattice bands
    llo, lhi, _ = aci(lo, hi, whole, alpha=0.1, gamma=0.01, window=500, edges_bps=BUCKETS.edges_bps)
    assert np.isin(llo[live], BUCKETS.edges_bps).all() and np.all(llo <= lhi)
    assert abs(np.mean((whole[live] >= llo[live]) & (whole[live] <= lhi[live])) - 0.9) < 0.02


def test_up_slope_shrinks_a_noise_direction_and_runs_the_same_in_graph():
    """A forecaster whose direction is pure noise gets slope ~0 (P(up) -> 1/2); a real one keeps slope ~1.

    The in-graph step (``onnx_export.calibrated``) equals the numpy one.
    """
    import torch

    from training.calibration import apply_up_slopes, fit_up_slopes, up_fractions
    from training.onnx_export import calibrated

    rng = np.random.default_rng(4)
    scale, r, y = _world(8000, 4)
    noise = _forecast(scale, shift=rng.normal(0, 0.4, size=scale.shape))  # leans up or down at random
    drift = rng.uniform(-0.6, 0.6, size=scale.shape)
    r_real = rng.normal(size=scale.shape) * scale + drift * scale
    real = _forecast(scale, shift=drift)  # knows the drift
    a_noise = fit_up_slopes(noise, y, BUCKETS)
    a_real = fit_up_slopes(real, BUCKETS.index(r_real), BUCKETS)
    assert np.all(a_noise < 0.2) and np.all(np.abs(a_real - 1.0) < 0.15)
    pu = lambda p: np.stack([prob_up(p[:, h], BUCKETS) for h in range(2)], axis=1)  # noqa: E731
    up = (r > 0).astype(float)
    shrunk = apply_up_slopes(noise, a_noise, BUCKETS)
    assert ece(pu(shrunk)[:, 0], up[:, 0]) < 0.5 * ece(pu(noise)[:, 0], up[:, 0])

    class Fixed(torch.nn.Module):
        def forward(self, features):
            return features

    graph = calibrated(Fixed(), (1.0, 1.0), tuple(a_noise), up_fractions(BUCKETS)).eval()
    with torch.no_grad():
        got = graph(torch.from_numpy(noise[:500].astype(np.float32))).numpy()
    np.testing.assert_allclose(got, apply_up_slopes(noise[:500], a_noise, BUCKETS), atol=2e-5)


def test_bands_on_a_price_lattice_cover_and_are_never_empty():
    """Outcomes on the bucket lattice, at 1 s mostly 0 (as BAC's mid returns): the plain CQR quantile is
    negative there and emptied the bands of narrow forecasts; lattice bands snap to bucket edges."""
    from training.conformal import cqr_scores, lattice_scores, snap_band

    rng = np.random.default_rng(11)
    n = 6000
    scale = rng.uniform(0.1, 1.0, size=(n, 2)) * np.array([1.0, 4.0])
    p = _forecast(scale, shift=rng.normal(0, 0.3, size=(n, 2)))
    r = np.round(rng.normal(size=(n, 2)) * np.array([0.2, 4.0]))  # whole bps; 98 % zeros at the first horizon
    cal, test = slice(0, n // 2), slice(n // 2, n)
    lo, hi = quantile_bps(p[:, 0], BUCKETS, 0.05), quantile_bps(p[:, 0], BUCKETS, 0.95)
    plain_q = split_quantile(cqr_scores(lo[cal], hi[cal], r[cal, 0]), 0.1)
    assert plain_q < 0 and np.mean(lo[test] - plain_q > hi[test] + plain_q) > 0.02  # the failure: empty bands

    sc = SplitConformal(BUCKETS, alpha=0.1).fit(p[cal], r[cal])
    blo, bhi = sc.bands(p[test])
    assert np.all(blo <= bhi)
    assert np.isin(blo, BUCKETS.edges_bps).all() and np.isin(bhi, BUCKETS.edges_bps).all()
    cov = coverage(blo, bhi, r[test])
    assert cov[0] >= 0.9 and abs(cov[1] - 0.9) < 0.02, cov  # one bucket holds 98 %: a lattice over-covers there
    s = lattice_scores(lo[test], hi[test], r[test, 0], BUCKETS.edges_bps)
    inside = (r[test, 0] >= blo[:, 0]) & (r[test, 0] <= bhi[:, 0])
    assert inside[s < sc.qhat_[0]].all()  # covered whenever q exceeds the lattice score (the guarantee)
    # a negative q that crosses the ends leaves the bucket holding the interval's centre
    one_lo, one_hi = snap_band(np.array([-0.2]), np.array([0.3]), np.array([-2.0]), BUCKETS.edges_bps)
    assert (one_lo[0], one_hi[0]) == (-0.5, 0.5)
