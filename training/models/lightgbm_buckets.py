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
        cols += window_summary(X)
    return np.concatenate(cols, axis=1).astype(np.float32)


def float32_splits(model) -> None:
    """Round every split threshold of a fitted ``LGBMClassifier`` down to the nearest float32, in place.

    The exported graph's TreeEnsemble compares float32 inputs with float32 thresholds, LightGBM
    compares with doubles: an input between a double threshold and its float32 rounding went the
    other way in the graph. With the largest float32 at or below each threshold, ``x <= t`` reads
    the same for every float32 input in both, and the model's own predictions do not change.
    Categorical splits (none here: every feature is numeric) would keep their thresholds.
    """
    import lightgbm as lgb

    def rounded(line: str) -> str:
        if not line.startswith("threshold="):
            return line
        t64 = np.array(line.removeprefix("threshold=").split(), dtype=np.float64)
        t32 = t64.astype(np.float32)
        above = t32.astype(np.float64) > t64
        t32[above] = np.nextafter(t32[above], np.float32(-np.inf))
        return "threshold=" + " ".join(repr(float(v)) for v in t32)

    lines = model.booster_.model_to_string().split("\n")
    # tree_sizes holds each tree's length in bytes, which the new thresholds change; without it
    # LightGBM parses the trees one after another
    text = "\n".join(rounded(line) for line in lines if not line.startswith("tree_sizes="))
    # the sklearn wrapper keeps its booster in _Booster (booster_ is a read-only view of it)
    model._Booster = lgb.Booster(model_str=text)


def window_summary(X: np.ndarray) -> list[np.ndarray]:
    """Each feature's mean and population std over the window, summed in float64 and then rounded to
    float32: the exported graph does the same (Cast, ReduceMean, Sqrt, Cast), so both sides hand the
    trees the same float32 value. Reduced in float32, numpy's pairwise sum and onnxruntime's differ
    in the last bits, and a value on a split threshold took the other branch: parity 0.034 on the
    demo's windows (0.0065 on real BAC)."""
    mean = X.mean(axis=1, dtype=np.float64)
    std = X.std(axis=1, dtype=np.float64)
    return [mean.astype(np.float32), std.astype(np.float32)]


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
            float32_splits(model)
            self.models_.append(model)
            self.maps_.append((cls, spread[np.unique(c)]))  # rows for the classes the model knows, in its order
        return self

    def predict_proba(self, X) -> np.ndarray:
        """Return (N, H, K): each horizon's class probabilities spread back over the buckets."""
        X, _ = check_xy(X, None)
        T = self._tab(X)
        out = [m.predict_proba(T) @ spread for m, (_, spread) in zip(self.models_, self.maps_, strict=True)]
        return normalise(np.stack(out, axis=1))
