"""Drift: PSI and KL equal scipy on the same bins; a shifted feature crosses, a resample does not."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import rel_entr
from scipy.stats import entropy

from core.strategy import DriftThresholds
from training.drift import DRIFT_EVENT, drift_report, emit_drift_event, kl, psi, quantile_cuts, window_columns


def shares(x, cuts):
    c = np.bincount(np.searchsorted(cuts, x, side="right"), minlength=len(cuts) + 1) / len(x)
    c = np.maximum(c, 1e-6)
    return c / c.sum()


@pytest.mark.parametrize("shift", [0.0, 0.3, 1.5])
def test_psi_and_kl_equal_scipy(shift):
    rng = np.random.default_rng(1)
    ref, cur = rng.standard_normal(5000), rng.standard_normal(3000) * 1.2 + shift
    cuts = quantile_cuts(ref, 10)
    r, c = shares(ref, cuts), shares(cur, cuts)
    assert kl(ref, cur) == pytest.approx(entropy(c, r), rel=1e-9)
    assert psi(ref, cur) == pytest.approx(rel_entr(c, r).sum() + rel_entr(r, c).sum(), rel=1e-9)  # PSI = J-divergence
    assert np.allclose(r, 0.1, atol=1e-3)  # quantile bins: the reference is uniform over them


def test_shifted_feature_and_prediction_drift_is_reported():
    rng = np.random.default_rng(2)
    X_ref = rng.standard_normal((4000, 3, 2)).astype(np.float32)
    X_cur = rng.standard_normal((2000, 3, 2)).astype(np.float32)
    X_cur[:, :, 1] += 1.0
    edges = np.arange(-2.5, 3.0, 1.0)
    p_ref = np.full((4000, 1, 5), 0.2)
    p_cur = np.tile([0.1, 0.1, 0.2, 0.3, 0.3], (2000, 1, 1)).reshape(2000, 1, 5)
    p_ref = p_ref + rng.uniform(0, 1e-3, p_ref.shape)
    ref = window_columns(X_ref, ("a", "b"), p_ref, edges)
    cur = window_columns(X_cur, ("a", "b"), p_cur, edges)
    report = drift_report(ref, cur, DriftThresholds())
    assert "b" in report.drifted and "a" not in report.drifted
    assert "pred.prob_up.h0" in report.drifted
    assert report.payload()["psi"]["b"] > 0.25
    calm = drift_report(ref, window_columns(X_ref[:2000], ("a", "b"), p_ref[:2000], edges), DriftThresholds())
    assert calm.drifted == () and emit_drift_event("m", calm) is None


def test_drift_emits_a_prefect_event(prefect_harness):
    rng = np.random.default_rng(3)
    report = drift_report({"a": rng.standard_normal(1000)}, {"a": rng.standard_normal(1000) + 2}, DriftThresholds())
    event = emit_drift_event("specs-tick", report)
    assert event is not None and event.event == DRIFT_EVENT
    assert event.resource.id == "mps.model.specs-tick" and event.payload["drifted"] == ["a"]
