"""Conformal bands around the forecast distribution: split (ICP) and adaptive (ACI) for drift.

The band of a horizon starts from the forecast's own central interval [q_(a/2), q_(1-a/2)] and is
widened by a conformal ``qhat`` (bps), the conformalised-quantile-regression score of Romano et al.
(2019): s = max(q_lo - r, r - q_hi). Split conformal takes qhat as the ceil((n+1)(1-a))-th smallest
calibration score, which guarantees coverage >= 1 - a on exchangeable data. ACI (Gibbs & Candès
2021) tracks drift by moving the working miscoverage a_t after every outcome,
a_(t+1) = a_t + gamma (a - err_t), so the long-run miss rate stays at a even when the data shift.
``qhat`` per horizon is what the model file carries (``conformal_qhat_bps``).

Bands live on the bucket lattice. A forecast is only known to bucket resolution and prices move in
ticks, so a band is snapped outward to bucket edges, and the conformity score is the one of the
snapped band: s = max(lo - e+(r), e-(r) - hi), with e+(r) the first edge above the outcome and e-(r)
the last one below it. The outcome lies in the snapped band [lo - q, hi + q] exactly when q > s, so the
split quantile (nudged by ``TIE_BPS`` above its score) keeps the coverage guarantee, and calibration
already counts the width that snapping adds. Where most outcomes sit in one bucket (99 % of BAC's 1 s
mid returns are 0) the plain CQR quantile is negative, shrank the band to a point, and float error
then emptied it; a lattice band cannot be empty: when a negative ``qhat`` would cross the two ends,
the band is the bucket holding the interval's centre (``feature_store.discretize.snap_band``, which
backtest/signal.py uses too, and serving-rs/src/signal.rs).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from feature_store.discretize import snap_band
from training.models.base import Buckets

TIE_BPS = 1e-6  # q must exceed a lattice score strictly; far below a bucket, far above float error in bps


def split_quantile(scores: np.ndarray, alpha: float) -> float:
    """Return the ceil((n+1)(1-alpha))-th smallest score (inf when n is too small for that level)."""
    s = np.sort(np.asarray(scores, dtype=np.float64))
    k = int(np.ceil((len(s) + 1) * (1.0 - alpha)))
    return float(s[k - 1]) if 1 <= k <= len(s) else (np.inf if k > len(s) else float(s[0]))


def quantile_bps(p: np.ndarray, buckets: Buckets, q: float) -> np.ndarray:
    """Level-``q`` quantile (bps) of bucket distributions (N, K), mass uniform within each bucket."""
    e = buckets.edges_bps
    cdf = np.cumsum(p, axis=-1)
    k = np.minimum((cdf < q).sum(axis=-1), p.shape[-1] - 1)
    below = np.where(k > 0, np.take_along_axis(cdf, np.maximum(k - 1, 0)[..., None], -1)[..., 0], 0.0)
    pk = np.take_along_axis(p, k[..., None], -1)[..., 0]
    t = np.clip((q - below) / np.maximum(pk, 1e-300), 0.0, 1.0)
    return e[k] + t * (e[k + 1] - e[k])


def cqr_scores(lo: np.ndarray, hi: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Conformity score of each outcome against its interval: > 0 outside, <= 0 inside."""
    return np.maximum(lo - r, r - hi)


def lattice_scores(lo: np.ndarray, hi: np.ndarray, r: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Score of each outcome against its interval snapped outward to ``edges``: covered iff q > score.

    Outside the grid an outcome is its own edge (a band reaches it only by extending past the grid).
    """
    e = np.asarray(edges, dtype=np.float64)
    r = np.asarray(r, dtype=np.float64)
    above = np.searchsorted(e, r, side="right")  # index of the first edge > r
    below = np.searchsorted(e, r, side="left") - 1  # index of the last edge < r
    e_up = np.where(r < e[0], r, e[np.minimum(above, len(e) - 1)])
    e_up = np.where(above >= len(e), np.inf, e_up)
    e_dn = np.where(r > e[-1], r, e[np.maximum(below, 0)])
    e_dn = np.where(below < 0, -np.inf, e_dn)
    return np.maximum(lo - e_up, e_dn - hi)


@dataclass
class SplitConformal:
    """Split-conformal (ICP) widening per horizon of the forecast's central (1 - alpha) interval.

    ``qhat_`` is the split quantile of the lattice scores plus ``TIE_BPS``; ``bands`` snaps the
    widened interval outward to the bucket edges.
    """

    buckets: Buckets
    alpha: float = 0.1
    qhat_: np.ndarray | None = None  # (H,) bps

    def _interval(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return quantile_bps(p, self.buckets, self.alpha / 2), quantile_bps(p, self.buckets, 1 - self.alpha / 2)

    def fit(self, p: np.ndarray, r_bps: np.ndarray) -> SplitConformal:
        """Calibrate on forecasts (N, H, K) and realised returns (N, H) in bps (a held-out window)."""
        lo, hi = self._interval(p)
        e = self.buckets.edges_bps
        self.qhat_ = np.array(
            [
                split_quantile(lattice_scores(lo[:, h], hi[:, h], r_bps[:, h], e), self.alpha) + TIE_BPS
                for h in range(p.shape[1])
            ]
        )
        return self

    def bands(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return the conformal band (lo, hi) in bps, each (N, H)."""
        if self.qhat_ is None:
            raise RuntimeError("SplitConformal.bands before fit")
        lo, hi = self._interval(p)
        return snap_band(lo, hi, self.qhat_[None, :], self.buckets.edges_bps)


def coverage(lo: np.ndarray, hi: np.ndarray, r_bps: np.ndarray) -> np.ndarray:
    """Share of outcomes inside their band, per horizon (H,)."""
    return ((r_bps >= lo) & (r_bps <= hi)).mean(axis=0)


def aci(
    lo: np.ndarray,
    hi: np.ndarray,
    r_bps: np.ndarray,
    alpha: float = 0.1,
    gamma: float = 0.005,
    window: int | None = None,
    edges_bps: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Adaptive conformal inference over one horizon's sequence of base intervals (T,), in time order.

    At step t the widening is the (1 - a_t) split quantile of the scores seen so far (the last
    ``window`` of them if given); after the outcome, a_(t+1) = a_t + gamma (alpha - err_t).
    With ``edges_bps`` the scores and bands are the lattice ones (``lattice_scores``, ``snap_band``).
    Returns the adapted band (lo_t, hi_t) and the working miscoverage a_t, each (T,).
    """
    if edges_bps is None:
        scores, tie = cqr_scores(lo, hi, r_bps), 0.0
    else:
        scores, tie = lattice_scores(lo, hi, r_bps, edges_bps), TIE_BPS
    n = len(r_bps)
    a_t, out_lo, out_hi, out_a = alpha, np.empty(n), np.empty(n), np.empty(n)
    for t in range(n):
        past = scores[max(0, t - window) : t] if window else scores[:t]
        if a_t >= 1.0:
            q = -np.inf
        elif a_t <= 0.0 or len(past) == 0:
            q = np.inf
        else:
            q = split_quantile(past, a_t) + tie
        if edges_bps is not None and np.isfinite(q):
            band = snap_band(lo[t : t + 1], hi[t : t + 1], np.array([q]), edges_bps)
            out_lo[t], out_hi[t] = band[0][0], band[1][0]
        else:
            out_lo[t], out_hi[t] = lo[t] - q, hi[t] + q
        out_a[t] = a_t
        err = float(not out_lo[t] <= r_bps[t] <= out_hi[t])
        a_t = a_t + gamma * (alpha - err)
    return out_lo, out_hi, out_a
