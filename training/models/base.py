"""The one interface every forecaster implements: windows of features in, bucket probabilities out.

Shapes (N samples, L lookback steps, F features in registry order, H horizons, K buckets):

    X: float32 (N, L, F)   the last L feature vectors before each decision time
    y: int     (N, H)      realised bucket index per horizon (0..K-1), labels clipped into the tails
    predict_proba(X) -> float (N, H, K), each [n, h, :] sums to 1

Bucket k holds log returns in ``[edges[k], edges[k+1])`` bps; the first and last buckets also hold
the tails (open-ended clip), as contracts/model.md says. ``Buckets`` is the single place that maps a
return to its bucket and a continuous distribution to bucket probabilities, so every baseline and
every model is judged on the same grid.

A model that can run inside the ONNX graph also implements ``Exportable.to_torch_module()``: an
``nn.Module`` in eval mode mapping float32 (B, L, F) to probabilities (B, H, K), with any
normalisation inside it, which ``training.onnx_export.export_model`` turns into the model file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, overload, runtime_checkable

import numpy as np

from core.errors import ContractError

if TYPE_CHECKING:
    from torch import nn

PROB_FLOOR = 1e-12  # no bucket is ever given exactly zero mass (log score stays finite)


def default_edges_bps(k: int = 101, lo: float = -50.0, hi: float = 50.0) -> np.ndarray:
    """Return K+1 edges whose K bucket mids run from ``lo`` to ``hi`` bps in equal steps (contract default)."""
    step = (hi - lo) / (k - 1)
    return lo - step / 2 + step * np.arange(k + 1, dtype=np.float64)


@dataclass(frozen=True, eq=False)
class Buckets:
    """K log-return buckets given by K+1 strictly increasing edges in bps (tails clipped into the ends)."""

    edges_bps: np.ndarray

    def __post_init__(self) -> None:
        e = np.asarray(self.edges_bps, dtype=np.float64)
        if e.ndim != 1 or len(e) < 3 or not np.all(np.diff(e) > 0) or not np.all(np.isfinite(e)):
            raise ContractError("bucket edges must be >= 3 finite, strictly increasing values in bps")
        e.setflags(write=False)
        object.__setattr__(self, "edges_bps", e)

    @classmethod
    def default(cls) -> Buckets:
        """101 buckets, mids -50..+50 bps (edges -50.5..+50.5), the contract default."""
        return cls(default_edges_bps())

    @classmethod
    def from_discretizer(cls, disc) -> Buckets:
        """The buckets of gold's return discretizer (``feature_store.discretize.Discretizer``, unit bps)."""
        if disc.unit != "bps":
            raise ContractError(f"return buckets need a discretizer in bps, got unit {disc.unit!r}")
        return cls(np.asarray(disc.edges, dtype=np.float64))

    @property
    def k(self) -> int:
        return len(self.edges_bps) - 1

    @property
    def mids_bps(self) -> np.ndarray:
        """Bucket mid returns in bps, (K,); the end buckets use their inner-edge midpoints."""
        e = self.edges_bps
        return 0.5 * (e[:-1] + e[1:])

    @property
    def inner_edges_bps(self) -> np.ndarray:
        """The K-1 edges between buckets (the outer two are only nominal: tails are clipped in)."""
        return self.edges_bps[1:-1]

    def index(self, returns_bps: np.ndarray) -> np.ndarray:
        """Map log returns in bps to bucket indices (int64), clipping the tails into the end buckets."""
        r = np.asarray(returns_bps, dtype=np.float64)
        if not np.all(np.isfinite(r)):
            raise ContractError("returns to bucket must be finite (drop or quarantine NaN labels first)")
        return np.searchsorted(self.inner_edges_bps, r, side="right").astype(np.int64)

    def from_cdf(self, cdf: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        """Discretise a continuous distribution into bucket probabilities.

        ``cdf`` maps an array of inner edges (K-1,) broadcast against the distribution's batch
        shape (..., 1) to CDF values (..., K-1); the end buckets take the tails.
        """
        c = np.asarray(cdf(self.inner_edges_bps), dtype=np.float64)
        c = np.maximum.accumulate(np.clip(c, 0.0, 1.0), axis=-1)
        zeros = np.zeros(c.shape[:-1] + (1,))
        ones = np.ones(c.shape[:-1] + (1,))
        p = np.diff(np.concatenate([zeros, c, ones], axis=-1), axis=-1)
        return normalise(p)


def normalise(p: np.ndarray, floor: float = PROB_FLOOR) -> np.ndarray:
    """Floor probabilities at ``floor`` and renormalise the last axis to sum to one."""
    p = np.maximum(np.asarray(p, dtype=np.float64), floor)
    return p / p.sum(axis=-1, keepdims=True)


@runtime_checkable
class DistributionModel(Protocol):
    """A forecaster of per-horizon bucket distributions (see the module docstring for shapes)."""

    name: str

    def fit(
        self, X: np.ndarray, y: np.ndarray, *, X_val: np.ndarray | None = None, y_val: np.ndarray | None = None
    ) -> DistributionModel:
        """Fit on windows ``X`` (N, L, F) and bucket labels ``y`` (N, H); return self."""
        ...

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Return bucket probabilities (N, H, K) for windows ``X`` (N, L, F)."""
        ...


@runtime_checkable
class Exportable(Protocol):
    """A model whose forecast runs as one torch graph (normalisation and any ensemble weights inside)."""

    def to_torch_module(self) -> nn.Module:
        """Return an eval-mode module mapping float32 (B, L, F) to probabilities (B, H, K)."""
        ...


@overload
def check_xy(X: np.ndarray, y: np.ndarray, k: int | None = None) -> tuple[np.ndarray, np.ndarray]: ...
@overload
def check_xy(X: np.ndarray, y: None, k: int | None = None) -> tuple[np.ndarray, None]: ...
@overload
def check_xy(X: np.ndarray, y: np.ndarray | None, k: int | None = None) -> tuple[np.ndarray, np.ndarray | None]: ...
def check_xy(X: np.ndarray, y: np.ndarray | None, k: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Validate shapes and ranges of a training pair; return X as float32 and y as int64."""
    X = np.asarray(X)
    if X.ndim != 3:
        raise ContractError(f"X must be (N, L, F) windows, got shape {X.shape}")
    if not np.all(np.isfinite(X)):
        bad = np.argwhere(~np.isfinite(X))[0]
        raise ContractError(f"X has a non-finite value at sample {bad[0]}, step {bad[1]}, feature {bad[2]}")
    if y is None:
        return X.astype(np.float32, copy=False), None
    y = np.asarray(y)
    if y.ndim != 2 or y.shape[0] != X.shape[0]:
        raise ContractError(f"y must be (N, H) with N = {X.shape[0]}, got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise ContractError(f"y must hold integer bucket indices, got dtype {y.dtype}")
    if y.size and (y.min() < 0 or (k is not None and y.max() >= k)):
        raise ContractError(f"y holds bucket indices outside 0..{(k or 0) - 1}: [{y.min()}, {y.max()}]")
    return X.astype(np.float32, copy=False), y.astype(np.int64, copy=False)


def check_proba(p: np.ndarray, n: int, h: int, k: int, atol: float = 1e-5) -> np.ndarray:
    """Raise ContractError unless ``p`` is (n, h, k), finite, non-negative and sums to one per row."""
    p = np.asarray(p)
    if p.shape != (n, h, k):
        raise ContractError(f"probabilities have shape {p.shape}, expected {(n, h, k)}")
    if not np.all(np.isfinite(p)) or p.min() < 0:
        raise ContractError("probabilities must be finite and non-negative")
    if not np.allclose(p.sum(axis=-1), 1.0, atol=atol):
        raise ContractError("probabilities must sum to one over the buckets")
    return p
