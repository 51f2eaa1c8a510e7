"""Scale-out: walk-forward folds fitted on a Dask LocalCluster of processes equal the single-process result."""

from __future__ import annotations

import numpy as np
import pytest
from polars.testing import assert_frame_equal

from training.evaluate import EvalConfig, EvalData, evaluate
from training.models.base import Buckets, default_edges_bps
from training.models.climatology import Climatology
from training.models.ewma_t import EwmaT
from training.models.lightgbm_buckets import LightGBMBuckets, LightGBMConfig
from training.splits import WalkForwardConfig
from training.synthetic import SyntheticConfig, simulate

BUCKETS = Buckets(default_edges_bps(41, -20, 20))


@pytest.mark.slow
def test_dask_folds_equal_one_process(prefect_harness):
    from prefect_dask import DaskTaskRunner

    from flows.walk_forward import walk_forward_eval

    d = simulate(SyntheticConfig(n_steps=3000, horizons=(1, 4), steps_per_day=250), BUCKETS)
    data = EvalData(
        X=d.X, y=d.y, times=d.times, label_end=d.times + 4, day=d.day, buckets=BUCKETS, r_bps=d.r_bps, horizons=(1, 4)
    )
    cfg = EvalConfig(folds=WalkForwardConfig(n_folds=3, min_train_units=6, gap=0), n_boot=200)
    models = {"lightgbm": lambda: LightGBMBuckets(BUCKETS, LightGBMConfig(n_estimators=20, learning_rate=0.1))}
    baselines = {"climatology": lambda: Climatology(BUCKETS), "ewma_t": lambda: EwmaT(BUCKETS)}
    single = evaluate(data, models, baselines, cfg)

    runner = DaskTaskRunner(cluster_kwargs={"n_workers": 2, "threads_per_worker": 1, "processes": True})
    fanned = walk_forward_eval.with_options(task_runner=runner)(data, models, baselines, cfg)
    assert fanned.scores["fold"].n_unique() == 4  # three folds and the pooled "all"
    assert_frame_equal(fanned.scores, single.scores)
    assert_frame_equal(fanned.diffs, single.diffs)
    assert_frame_equal(fanned.coverage, single.coverage)
    for name, p in single.predictions.items():
        np.testing.assert_array_equal(fanned.predictions[name], p)
