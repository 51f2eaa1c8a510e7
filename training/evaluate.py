"""Walk-forward evaluation: every model and every baseline fitted on the same folds, scored alike.

``evaluate`` takes windows, labels and times, a mapping of model factories and one of baseline
factories, fits each on every fold's (purged) training samples, predicts the fold's test samples and
returns tidy tables:

- ``scores``: (model, fold, horizon, metric, value) for each fold and pooled over folds ("all");
- ``diffs``: (model, baseline, horizon, metric, mean, lo, hi) baseline score minus model score
  (positive = the model is better) with a moving-block bootstrap CI over days;
- ``coverage``: split-conformal coverage per (model, fold, horizon), each fold's band calibrated on
  the previous fold's out-of-sample forecasts (so the first fold has none);
- ``skill``: with an oracle forecast, the share of the oracle's log-score gain over climatology
  each model captures, per horizon.
The out-of-sample forecasts are kept in ``predictions`` for reports and ensembles.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from core.errors import ContractError
from training.conformal import SplitConformal, coverage
from training.metrics import block_bootstrap_ci, horizon_scores, log_score_per_sample, rps_per_sample, skill_share
from training.models.base import Buckets, DistributionModel, check_proba, check_xy
from training.splits import Fold, WalkForwardConfig, walk_forward

Factory = Callable[[], DistributionModel]
FoldForecasts = dict[str, np.ndarray]  # model name -> (n_test, H, K) on one fold's test samples
# Fits every fold and returns their forecasts in fold order; the default runs them here, in order.
# ``flows.walk_forward`` passes one that submits each fold to its Prefect task runner (Dask).
FoldRunner = Callable[[np.ndarray, np.ndarray, Sequence[Fold], Mapping[str, Factory]], list[FoldForecasts]]
DIFF_METRICS = {"log_score": log_score_per_sample, "rps": rps_per_sample}


@dataclass(frozen=True)
class EvalData:
    """Everything evaluation needs, aligned on N samples in time order."""

    X: np.ndarray  # (N, L, F)
    y: np.ndarray  # (N, H)
    times: np.ndarray  # (N,) decision time (ns, or any increasing int)
    label_end: np.ndarray  # (N,) end of the longest label window
    day: np.ndarray  # (N,) day number, for day-blocked folds and the bootstrap
    buckets: Buckets
    r_bps: np.ndarray | None = None  # (N, H) realised returns; bucket mids when absent
    horizons: tuple[int, ...] = ()
    oracle: np.ndarray | None = None  # (N, H, K) latent-state forecast where one exists


@dataclass(frozen=True)
class EvalConfig:
    """Folds, conformal level and bootstrap settings."""

    folds: WalkForwardConfig = field(default_factory=WalkForwardConfig)
    by_day: bool = True  # folds of whole days (else of samples)
    conformal_alpha: float = 0.1
    bootstrap_block: int = 1  # days per bootstrap block
    n_boot: int = 1000
    seed: int = 0


@dataclass
class EvalResult:
    scores: pl.DataFrame
    diffs: pl.DataFrame
    coverage: pl.DataFrame
    skill: pl.DataFrame
    predictions: dict[str, np.ndarray]  # model -> (n_test, H, K) over the concatenated test folds
    test_index: np.ndarray  # positions of those rows in the input
    fold_of: np.ndarray  # fold number of each test row


def fit_split(
    X_train: np.ndarray, y_train: np.ndarray, X_test: np.ndarray, factories: Mapping[str, Factory]
) -> FoldForecasts:
    """Fit each factory's model on one fold's training samples; forecast its test samples."""
    return {name: make().fit(X_train, y_train).predict_proba(X_test) for name, make in factories.items()}


def fit_in_order(X: np.ndarray, y: np.ndarray, folds: Sequence[Fold], factories: Mapping[str, Factory]):
    """The default ``FoldRunner``: one fold after the other, in this process."""
    return [fit_split(X[f.train], y[f.train], X[f.test], factories) for f in folds]


def evaluate(
    data: EvalData,
    models: Mapping[str, Factory],
    baselines: Mapping[str, Factory],
    cfg: EvalConfig,
    fold_runner: FoldRunner = fit_in_order,
) -> EvalResult:
    """Fit every model and baseline walk-forward on the same folds; return tidy scores, diffs and CIs.

    Folds are independent fits, so ``fold_runner`` may run them anywhere (a Dask cluster through
    ``flows.walk_forward``); scoring happens here, on their forecasts, identically either way.
    """
    X, y = check_xy(data.X, data.y, data.buckets.k)
    H = y.shape[1]
    horizons = data.horizons or tuple(range(1, H + 1))
    r = data.buckets.mids_bps[y] if data.r_bps is None else np.asarray(data.r_bps, dtype=np.float64)
    if set(models) & set(baselines):
        raise ContractError(f"model and baseline names collide: {sorted(set(models) & set(baselines))}")
    folds = walk_forward(data.times, data.label_end, cfg.folds, groups=data.day if cfg.by_day else None)
    everyone = {**baselines, **models}
    preds: dict[str, list[np.ndarray]] = {name: [] for name in everyone}
    rows, cov_rows = [], []
    for fold, forecasts in zip(folds, fold_runner(X, y, folds, everyone), strict=True):
        for name in everyone:
            p = check_proba(forecasts[name], len(fold.test), H, data.buckets.k)
            preds[name].append(p)
            for h in range(H):
                s = horizon_scores(p[:, h], y[fold.test, h], data.buckets, r[fold.test, h], seed=cfg.seed)
                rows += [(name, str(fold.index), horizons[h], m, v) for m, v in s.items()]
            if len(preds[name]) >= 2:  # conformal band from the previous fold's out-of-sample forecasts
                prev = folds[fold.index - 1].test
                sc = SplitConformal(data.buckets, cfg.conformal_alpha).fit(preds[name][-2], r[prev])
                lo, hi = sc.bands(p)
                for h, c in enumerate(coverage(lo, hi, r[fold.test])):
                    cov_rows.append((name, str(fold.index), horizons[h], 1 - cfg.conformal_alpha, float(c)))
    test = np.concatenate([f.test for f in folds])
    fold_of = np.concatenate([np.full(len(f.test), f.index) for f in folds])
    pooled = {name: np.concatenate(ps) for name, ps in preds.items()}
    for name, p in pooled.items():
        for h in range(H):
            s = horizon_scores(p[:, h], y[test, h], data.buckets, r[test, h], seed=cfg.seed)
            rows += [(name, "all", horizons[h], m, v) for m, v in s.items()]
    diff_rows = []
    for name in everyone:
        for base in baselines:
            if base == name:
                continue
            for h in range(H):
                for metric, fn in DIFF_METRICS.items():
                    d = fn(pooled[base][:, h], y[test, h]) - fn(pooled[name][:, h], y[test, h])
                    m, ci_lo, ci_hi = block_bootstrap_ci(
                        d, data.day[test], block=cfg.bootstrap_block, n_boot=cfg.n_boot, seed=cfg.seed
                    )
                    diff_rows.append((name, base, horizons[h], metric, m, ci_lo, ci_hi))
    skill_rows = []
    if data.oracle is not None and "climatology" in pooled:
        o = data.oracle[test]
        for h in range(H):
            clim = log_score_per_sample(pooled["climatology"][:, h], y[test, h]).mean()
            orc = log_score_per_sample(o[:, h], y[test, h]).mean()
            for name in everyone:
                ls = log_score_per_sample(pooled[name][:, h], y[test, h]).mean()
                skill_rows.append((name, horizons[h], float(ls), float(clim), float(orc), skill_share(ls, clim, orc)))
    return EvalResult(
        scores=pl.DataFrame(rows, schema=["model", "fold", "horizon", "metric", "value"], orient="row"),
        diffs=pl.DataFrame(
            diff_rows, schema=["model", "baseline", "horizon", "metric", "mean", "lo", "hi"], orient="row"
        ),
        coverage=pl.DataFrame(cov_rows, schema=["model", "fold", "horizon", "nominal", "coverage"], orient="row"),
        skill=pl.DataFrame(
            skill_rows, schema=["model", "horizon", "log_score", "climatology", "oracle", "skill_share"], orient="row"
        ),
        predictions=pooled,
        test_index=test,
        fold_of=fold_of,
    )
