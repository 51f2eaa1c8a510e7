"""Discretizers: real values -> bucket indices and Gaussian soft labels, with edges stored as data.

The SPECS return discretizer has K = 101 buckets whose mids run from -50 to +50 bps (edges from
``core.strategy.Buckets``); values beyond the outer edges are clipped into the end buckets. Soft
labels put N(value, sigma) mass on each bucket (tails folded into the ends), so rows sum to 1.
Volatility-scaled edges divide each return by its own volatility estimate times a reference vol
before bucketing (the edges then mean "bps at the reference vol").

IV, RV and volume discretizers use the same class with other units: fixed linear edges (IV and RV in
annualised vol points) or quantile edges fitted on a training window (log volume).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr

from core.errors import ConfigError

BPS = 1e4


@dataclass(frozen=True)
class Discretizer:
    """K buckets given by K + 1 increasing ``edges`` in ``unit``; ``scale`` maps raw values into that unit.

    ``unit`` is descriptive ("bps" for log returns, "vol" for IV/RV, "log_volume"); ``scale`` multiplies
    raw values first (1e4 turns a log return into bps).
    """

    edges: tuple[float, ...]
    unit: str = "bps"
    scale: float = BPS
    vol_scaled: bool = False
    ref_vol: float = 0.0  # per-horizon vol the edges are written for when vol_scaled

    def __post_init__(self) -> None:
        e = np.asarray(self.edges, dtype=float)
        if e.ndim != 1 or len(e) < 3 or not np.all(np.isfinite(e)) or not np.all(np.diff(e) > 0):
            raise ConfigError(f"discretizer edges must be >= 3 finite increasing values; got {list(self.edges)[:5]}...")
        if self.vol_scaled and not self.ref_vol > 0:
            raise ConfigError("vol_scaled discretizer needs ref_vol > 0")
        object.__setattr__(self, "edges", tuple(float(x) for x in e))

    # ---- construction -------------------------------------------------------------------------
    @classmethod
    def returns(
        cls, count: int = 101, lo_bps: float = -50.0, hi_bps: float = 50.0, vol_scaled: bool = False, ref_vol=0.0
    ) -> Discretizer:
        """SPECS return buckets: ``count`` buckets with mids from ``lo_bps`` to ``hi_bps`` in equal steps."""
        step = (hi_bps - lo_bps) / (count - 1)
        edges = tuple(lo_bps - step / 2 + i * step for i in range(count + 1))
        return cls(edges, "bps", BPS, vol_scaled, ref_vol)

    @classmethod
    def from_buckets(cls, buckets, vol_scaled: bool = False, ref_vol: float = 0.0) -> Discretizer:
        """From ``core.strategy.Buckets`` (lo_bps, hi_bps, count)."""
        return cls.returns(buckets.count, buckets.lo_bps, buckets.hi_bps, vol_scaled, ref_vol)

    @classmethod
    def linear(cls, lo: float, hi: float, count: int, unit: str) -> Discretizer:
        """``count`` equal buckets between ``lo`` and ``hi`` (IV, RV in vol points)."""
        return cls(tuple(np.linspace(lo, hi, count + 1)), unit, 1.0)

    @classmethod
    def quantiles(cls, values: np.ndarray, count: int, unit: str, log: bool = False) -> Discretizer:
        """Edges at the training window's quantiles (e.g. volume; ``log`` buckets log1p(values))."""
        v = np.asarray(values, dtype=float)
        v = np.log1p(v) if log else v
        v = v[np.isfinite(v)]
        if v.size < count:
            raise ConfigError(f"quantile discretizer for {unit}: {v.size} finite values for {count} buckets")
        e = np.unique(np.quantile(v, np.linspace(0, 1, count + 1)))
        if len(e) < 3:
            raise ConfigError(f"quantile discretizer for {unit}: values too concentrated for distinct edges")
        return cls(tuple(e), unit, 1.0)

    # ---- use ----------------------------------------------------------------------------------
    @property
    def k(self) -> int:
        return len(self.edges) - 1

    @property
    def mids(self) -> np.ndarray:
        e = np.asarray(self.edges)
        return (e[1:] + e[:-1]) / 2

    def _scaled(self, values, vol=None) -> np.ndarray:
        x = np.asarray(values, dtype=float) * self.scale
        if self.vol_scaled:
            if vol is None:
                raise ConfigError("vol_scaled discretizer needs the per-row vol")
            x = x * (self.ref_vol / np.asarray(vol, dtype=float))
        return x

    def bucket(self, values, vol=None) -> np.ndarray:
        """Bucket index per value in [0, K); values beyond the outer edges are clipped to the end buckets."""
        x = self._scaled(values, vol)
        if np.isnan(x).any():
            raise ConfigError("cannot bucket NaN values")
        idx = np.searchsorted(np.asarray(self.edges), x, side="right") - 1
        return np.clip(idx, 0, self.k - 1).astype(np.int16)

    def soft(self, values, sigma: float, vol=None) -> np.ndarray:
        """Gaussian soft labels (N, K): the mass of N(x, sigma) in each bucket, tails folded into the ends.

        ``sigma`` is in the discretizer's unit (bps for returns).
        """
        if not sigma > 0:
            raise ConfigError("soft labels need sigma > 0")
        x = self._scaled(values, vol)[:, None]
        e = np.asarray(self.edges)[None, :]
        cdf = ndtr((e - x) / sigma)
        cdf[:, 0], cdf[:, -1] = 0.0, 1.0
        return np.diff(cdf, axis=1)

    def to_json(self) -> str:
        """The discretizer as JSON (stored with the label set and in model metadata)."""
        return json.dumps(
            {
                "edges": list(self.edges),
                "unit": self.unit,
                "scale": self.scale,
                "vol_scaled": self.vol_scaled,
                "ref_vol": self.ref_vol,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> Discretizer:
        d = json.loads(text)
        return cls(tuple(d["edges"]), d["unit"], d["scale"], d["vol_scaled"], d["ref_vol"])


def vol_discretizer(max_vol: float = 2.0, count: int = 40, unit: str = "vol") -> Discretizer:
    """IV/RV buckets: annualised vol from 0 to ``max_vol`` in equal steps (clipped above)."""
    return Discretizer.linear(0.0, max_vol, count, unit)


def horizon_ref_vol(annual_vol: float, horizon_years: float) -> float:
    """The vol (bps) of a horizon under an annual vol: the reference for vol-scaled edges."""
    return annual_vol * math.sqrt(horizon_years) * BPS


def snap_band(lo: np.ndarray, hi: np.ndarray, q: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The band [lo - q, hi + q] snapped outward to the bucket ``edges`` (any one unit for all four).

    A forecast is known to bucket resolution, so a band is a run of whole buckets (training.conformal
    calibrates ``q`` for exactly this band). Ends beyond the grid stay as they are; where a negative
    ``q`` crosses the ends, the band is the bucket holding the interval's centre, never empty.
    """
    e = np.asarray(edges, dtype=np.float64)
    a, b = np.asarray(lo - q, dtype=np.float64), np.asarray(hi + q, dtype=np.float64)
    crossed = a > b
    centre = 0.5 * (np.asarray(lo) + np.asarray(hi))
    a, b = np.where(crossed, centre, a), np.where(crossed, centre, b)
    k_lo = np.searchsorted(e, a, side="right") - 1  # last edge <= a
    k_hi = np.searchsorted(e, b, side="left")  # first edge >= b
    snapped_lo = np.where(k_lo < 0, a, e[np.clip(k_lo, 0, len(e) - 1)])
    snapped_hi = np.where(k_hi >= len(e), b, e[np.clip(k_hi, 0, len(e) - 1)])
    return snapped_lo, snapped_hi
