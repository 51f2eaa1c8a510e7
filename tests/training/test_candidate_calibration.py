"""Candidate calibration: one calibration day leaves the temperatures the identity; two or more fit them."""

import numpy as np
import vol_models as vm

from training.candidate import MIN_CAL_DAYS, build_candidate, day_split
from training.factory import baselines, make_model
from training.models.base import Buckets


def test_temperatures_need_more_than_one_calibration_day(tmp_path):
    """A temperature fitted on one day learns that day's regime (module docstring of training.candidate)."""
    X, y, days = vm.world(3000, seed=3, days=6)
    meta = vm.meta("gbm", "1")
    buckets = Buckets(np.asarray(meta.bucket_edges_bps))
    assert MIN_CAL_DAYS == 2
    for cal_days in (1, 2):
        model = make_model("lightgbm", buckets, vm.FEATURES, fast=True)
        base = baselines("tick", buckets, vm.FEATURES)
        split = day_split(days, 2, cal_days)
        cand = build_candidate(X, y, days, model, base, meta, tmp_path / f"cal{cal_days}", split)
        temps = np.asarray(cand.meta.calibration_temperatures)
        if cal_days == 1:
            assert np.all(temps == 1.0), temps
        else:
            assert np.all(np.abs(temps - 1.0) > 1e-3), temps  # fitted: LightGBM's 9 coarse bins are too wide
        assert np.all(np.asarray(cand.meta.conformal_qhat_bps) != 0.0)  # conformal bands are always fitted
