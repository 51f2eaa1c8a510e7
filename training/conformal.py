"""Conformal bands around the forecast distribution: split (ICP) and adaptive (ACI) for drift.

The band of a horizon starts from the forecast's own central interval [q_(a/2), q_(1-a/2)] and is
widened by a conformal ``qhat`` (bps), the conformalised-quantile-regression score of Romano et al.
(2019): s = max(q_lo - r, r - q_hi). Split conformal takes qhat as the ceil((n+1)(1-a))-th smallest
calibration score, which guarantees coverage >= 1 - a on exchangeable data. ACI (Gibbs & Candès
2021) tracks drift by moving the working miscoverage a_t after every outcome,
a_(t+1) = a_t + gamma (a - err_t), so the long-run miss rate stays at a even when the data shift.
``qhat`` per horizon is what the model file carries (``conformal_qhat_bps``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from training.models.base import Buckets


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


@dataclass
class SplitConformal:
    """Split-conformal (ICP) widening per horizon of the forecast's central (1 - alpha) interval."""

    buckets: Buckets
    alpha: float = 0.1
    qhat_: np.ndarray | None = None  # (H,) bps

    def _interval(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return quantile_bps(p, self.buckets, self.alpha / 2), quantile_bps(p, self.buckets, 1 - self.alpha / 2)

    def fit(self, p: np.ndarray, r_bps: np.ndarray) -> SplitConformal:
        """Calibrate on forecasts (N, H, K) and realised returns (N, H) in bps (a held-out window)."""
        lo, hi = self._interval(p)
        self.qhat_ = np.array(
            [split_quantile(cqr_scores(lo[:, h], hi[:, h], r_bps[:, h]), self.alpha) for h in range(p.shape[1])]
        )
        return self

    def bands(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return the conformal band (lo, hi) in bps, each (N, H)."""
        if self.qhat_ is None:
            raise RuntimeError("SplitConformal.bands before fit")
        lo, hi = self._interval(p)
        return lo - self.qhat_[None, :], hi + self.qhat_[None, :]


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
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Adaptive conformal inference over one horizon's sequence of base intervals (T,), in time order.

    At step t the widening is the (1 - a_t) split quantile of the scores seen so far (the last
    ``window`` of them if given); after the outcome, a_(t+1) = a_t + gamma (alpha - err_t).
    Returns the adapted band (lo_t, hi_t) and the working miscoverage a_t, each (T,).
    """
    scores = cqr_scores(lo, hi, r_bps)
    a_t, out_q, out_a = alpha, np.empty(len(r_bps)), np.empty(len(r_bps))
    for t in range(len(r_bps)):
        past = scores[max(0, t - window) : t] if window else scores[:t]
        if a_t >= 1.0:
            q = -np.inf
        elif a_t <= 0.0 or len(past) == 0:
            q = np.inf
        else:
            q = split_quantile(past, a_t)
        out_q[t], out_a[t] = q, a_t
        err = float(scores[t] > q)
        a_t = a_t + gamma * (alpha - err)
    return lo - out_q, hi + out_q, out_a
