"""LightGBM per horizon: multiclass over a coarser binning of the buckets, mapped back to all K.

Boosting K = 101 classes grows 101 trees per round and starves the tail classes of data, so each
horizon's buckets are merged into ``n_bins`` contiguous classes at quantiles of the training labels
(dense near zero, wide in the tails). The classifier gives P(class); each class's probability is
spread over its buckets in proportion to their (smoothed) training frequencies inside the class,
so the output is a full (N, H, K) distribution and the mapping is a fixed (C, K) matrix that an
exporter can append to the tree ensemble as one MatMul. ``n_bins = 0`` keeps all K buckets.

Features per window: the last step's features at ``lags`` and, with ``summary``, each feature's
mean and standard deviation over the window.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from training.models.base import Buckets, check_xy, normalise


@dataclass(frozen=True)
class LightGBMConfig:
    """Binning, window features and boosting parameters."""

    n_bins: int = 15
    lags: tuple[int, ...] = (0, 1, 2, 4)
    summary: bool = True
    n_estimators: int = 300
    learning_rate: float = 0.05
    num_leaves: int = 15
    min_child_samples: int = 50
    subsample: float = 0.8
    colsample_bytree: float = 0.8
    early_stopping_rounds: int = 30
    num_threads: int = 1  # OpenMP spin-waits badly on a shared, oversubscribed machine
    seed: int = 0


def window_features(X: np.ndarray, lags: tuple[int, ...], summary: bool) -> np.ndarray:
    """Flatten windows (N, L, F) into tabular features (N, len(lags) * F [+ 2 F])."""
    L = X.shape[1]
    cols = [X[:, L - 1 - lag, :] for lag in lags if lag < L]
    if summary:
        cols += [X.mean(axis=1), X.std(axis=1)]
    return np.concatenate(cols, axis=1)


def coarse_bins(y: np.ndarray, k: int, n_bins: int, alpha: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Return (bucket -> class map (K,), class -> bucket spreading matrix (C, K)) from training labels (N,)."""
    if n_bins <= 0 or n_bins >= k:
        return np.arange(k), np.eye(k)
    cuts = np.unique(np.quantile(y, np.linspace(0, 1, n_bins + 1)[1:-1], method="nearest"))
    cls = np.searchsorted(cuts, np.arange(k), side="right")  # contiguous classes of buckets
    cls = np.unique(cls, return_inverse=True)[1]
    freq = np.bincount(y, minlength=k) + alpha
    spread = np.zeros((cls.max() + 1, k))
    spread[cls, np.arange(k)] = freq
    return cls, spread / spread.sum(axis=1, keepdims=True)


class LightGBMBuckets:
    """One LightGBM multiclass model per horizon over coarse return classes."""

    name = "lightgbm"

    def __init__(self, buckets: Buckets | None = None, cfg: LightGBMConfig | None = None) -> None:
        self.buckets = buckets or Buckets.default()
        self.cfg = cfg or LightGBMConfig()
        self.models_: list = []
        self.maps_: list[tuple[np.ndarray, np.ndarray]] = []

    def _tab(self, X: np.ndarray) -> np.ndarray:
        return window_features(X, self.cfg.lags, self.cfg.summary)

    def fit(self, X, y, *, X_val=None, y_val=None) -> LightGBMBuckets:
        """Fit one classifier per horizon; with a validation set, stop early on its multi_logloss."""
        import lightgbm as lgb

        X, y = check_xy(X, y, self.buckets.k)
        T = self._tab(X)
        Tv = self._tab(check_xy(X_val, y_val, self.buckets.k)[0]) if X_val is not None else None
        self.models_, self.maps_ = [], []
        for h in range(y.shape[1]):
            cls, spread = coarse_bins(y[:, h], self.buckets.k, self.cfg.n_bins)
            c = cls[y[:, h]]
            model = lgb.LGBMClassifier(
                # two classes (mid-quote labels at 1 s: ~99 % in the zero bucket, so every quantile cut is
                # that bucket) need the binary objective: the sklearn wrapper sets num_class only above 2
                objective="multiclass" if len(np.unique(c)) > 2 else "binary",
                n_estimators=self.cfg.n_estimators,
                learning_rate=self.cfg.learning_rate,
                num_leaves=self.cfg.num_leaves,
                min_child_samples=self.cfg.min_child_samples,
                subsample=self.cfg.subsample,
                subsample_freq=1,
                colsample_bytree=self.cfg.colsample_bytree,
                n_jobs=self.cfg.num_threads,
                random_state=self.cfg.seed,
                verbose=-1,
            )
            fit_kw = {}
            if Tv is not None:
                cv = cls[np.asarray(y_val)[:, h]]
                seen = np.isin(cv, np.unique(c))  # LightGBM rejects validation classes it never trained on
                fit_kw = {
                    "eval_X": Tv[seen],
                    "eval_y": cv[seen],
                    "callbacks": [lgb.early_stopping(self.cfg.early_stopping_rounds, verbose=False)],
                }
            model.fit(T, c, **fit_kw)
            self.models_.append(model)
            self.maps_.append((cls, spread[np.unique(c)]))  # rows for the classes the model knows, in its order
        return self

    def predict_proba(self, X) -> np.ndarray:
        """Return (N, H, K): each horizon's class probabilities spread back over the buckets."""
        X, _ = check_xy(X, None)
        T = self._tab(X)
        out = [m.predict_proba(T) @ spread for m, (_, spread) in zip(self.models_, self.maps_, strict=True)]
        return normalise(np.stack(out, axis=1))
