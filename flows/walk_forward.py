"""Walk-forward evaluation with its folds fanned out: one task per fold on the flow's task runner.

With Prefect's ``DaskTaskRunner`` the folds are fitted on a ``dask.distributed`` cluster (a
LocalCluster of processes on one machine, or a scheduler address in production: DESIGN section 9);
with the default runner they run in this process. Each task receives only its fold's training and
test samples. Folds are independent fits, and scoring, CIs and conformal coverage are computed
here on their forecasts by ``training.evaluate.evaluate``, so the result equals the single-process
one (tests/flows/test_walk_forward_parallel.py holds it to that).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from training.evaluate import EvalConfig, EvalData, EvalResult, Factory, evaluate, fit_split
from training.splits import Fold

fit_fold_task = task(name="fit-fold", cache_policy=NO_CACHE)(fit_split)


def on_task_runner(X: np.ndarray, y: np.ndarray, folds: Sequence[Fold], factories: Mapping[str, Factory]):
    """A ``FoldRunner`` that submits every fold at once to the running flow's task runner."""
    futures = [fit_fold_task.submit(X[f.train], y[f.train], X[f.test], factories) for f in folds]
    return [future.result() for future in futures]


@flow(name="walk-forward")
def walk_forward_eval(
    data: EvalData, models: Mapping[str, Factory], baselines: Mapping[str, Factory], cfg: EvalConfig
) -> EvalResult:
    """``training.evaluate.evaluate`` with each fold's fits as a task (see the module docstring)."""
    return evaluate(data, models, baselines, cfg, fold_runner=on_task_runner)
