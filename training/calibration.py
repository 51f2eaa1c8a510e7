"""Recalibrate forecasts on held-out data: temperature per horizon, isotonic or Platt on P(up).

Temperature scaling (Guo et al. 2017) rescales log probabilities, p' ∝ p^(1/T): T > 1 widens an
over-confident distribution, T < 1 sharpens a timid one; it is one number per horizon, runs inside
the ONNX graph (``training.onnx_export.calibrated``) and never changes the ranking of buckets.
The P(up) calibrators (isotonic or Platt) map the forecast P(up) to the observed rate; applied to
a distribution they rescale its up and down masses so P(up) equals the calibrated value and the
shape on each side is kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from scipy import optimize

from training.metrics import prob_up, up_mask
from training.models.base import Buckets, normalise


def apply_temperature(p: np.ndarray, temperatures: np.ndarray) -> np.ndarray:
    """Apply per-horizon temperatures (H,) to probabilities (N, H, K)."""
    logp = np.log(np.maximum(p, 1e-30)) / np.asarray(temperatures, dtype=np.float64)[None, :, None]
    logp -= logp.max(axis=-1, keepdims=True)
    return normalise(np.exp(logp), 0.0)


def fit_temperatures(p: np.ndarray, y: np.ndarray, bounds: tuple[float, float] = (0.05, 20.0)) -> np.ndarray:
    """Return the per-horizon temperature (H,) minimising the log score of ``p`` (N, H, K) on labels ``y`` (N, H)."""
    logp = np.log(np.maximum(p, 1e-30))
    out = []
    for h in range(p.shape[1]):
        lp, yh = logp[:, h, :], y[:, h]

        def nll(log_t: float, lp=lp, yh=yh) -> float:
            z = lp / np.exp(log_t)
            z = z - z.max(axis=1, keepdims=True)
            return float((np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(yh)), yh]).mean())

        res = optimize.minimize_scalar(nll, bounds=np.log(bounds), method="bounded", options={"xatol": 1e-4})
        out.append(float(np.exp(res.x)))
    return np.array(out)


@dataclass
class ProbUpCalibrator:
    """Per-horizon map from forecast P(up) to the observed up-rate: isotonic or Platt (logistic on logit)."""

    method: Literal["isotonic", "platt"] = "isotonic"
    fitted_: list = field(default_factory=list)

    def fit(self, pu: np.ndarray, up: np.ndarray) -> ProbUpCalibrator:
        """Fit on forecast P(up) (N, H) and realised direction (N, H) in {0, 1}."""
        from sklearn.isotonic import IsotonicRegression
        from sklearn.linear_model import LogisticRegression

        self.fitted_ = []
        for h in range(pu.shape[1]):
            if self.method == "isotonic":
                m = IsotonicRegression(y_min=1e-4, y_max=1 - 1e-4, out_of_bounds="clip").fit(pu[:, h], up[:, h])
            else:
                m = LogisticRegression(C=1e6).fit(_logit(pu[:, h])[:, None], up[:, h].astype(int))
            self.fitted_.append(m)
        return self

    def transform(self, pu: np.ndarray) -> np.ndarray:
        """Return calibrated P(up) (N, H)."""
        cols = []
        for h, m in enumerate(self.fitted_):
            if self.method == "isotonic":
                cols.append(m.predict(pu[:, h]))
            else:
                cols.append(m.predict_proba(_logit(pu[:, h])[:, None])[:, 1])
        return np.clip(np.stack(cols, axis=1), 1e-6, 1 - 1e-6)

    def apply_to_probs(self, p: np.ndarray, buckets: Buckets) -> np.ndarray:
        """Rescale each (n, h) distribution's up and down masses so its P(up) is the calibrated one.

        Buckets whose mid is above zero (the "up" event, ``training.metrics.up_mask``) are scaled
        by u, the rest (down and the flat zero bucket) by 1; u solves P(up) = target exactly.
        """
        f = up_fractions(buckets)
        pu = np.stack([prob_up(p[:, h], buckets) for h in range(p.shape[1])], axis=1)
        target = self.transform(pu)[..., None]
        a, b = (p * f * f).sum(-1, keepdims=True), (p * f * (1 - f)).sum(-1, keepdims=True)
        c, d = (p * f).sum(-1, keepdims=True), (p * (1 - f)).sum(-1, keepdims=True)
        u = np.clip((target * d - b) / np.maximum(a - target * c, 1e-12), 1e-6, 1e6)
        return normalise(p * (f * u + (1 - f)))


def _logit(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 1e-6, 1 - 1e-6)
    return np.log(x / (1 - x))


def up_fractions(buckets: Buckets) -> np.ndarray:
    """Each bucket's share of the "up" event (K,): 1 where its mid is above zero, else 0 (the zero bucket is flat)."""
    return up_mask(buckets)


SNAP_SLOPE = 0.02  # a fitted P(up) slope below this is taken as zero


def fit_up_slopes(
    p: np.ndarray, y: np.ndarray, buckets: Buckets, bounds: tuple[float, float] = (0.0, 2.0)
) -> np.ndarray:
    """Per-horizon slope ``a`` of P(up)' = sigmoid(a logit P(up)) minimising the Bernoulli log loss, (H,).

    Platt scaling without the intercept: an intercept fitted on one calibration slice learns that
    slice's drift, which the next days do not share; the slope only shrinks (a < 1) a direction
    signal that was over-confident, or sharpens (a > 1) a timid one, around 1/2.
    """
    f = up_fractions(buckets)
    up = f[y]  # (N, H) realised up (bucket mid above zero), as the gates count it
    out = []
    for h in range(p.shape[1]):
        lg, u = _logit(p[:, h] @ f), up[:, h]

        def loss(a: float, lg=lg, u=u) -> float:
            q = np.clip(1.0 / (1.0 + np.exp(-a * lg)), 1e-9, 1 - 1e-9)
            return float(-(u * np.log(q) + (1 - u) * np.log(1 - q)).mean())

        out.append(float(optimize.minimize_scalar(loss, bounds=bounds, method="bounded", options={"xatol": 1e-4}).x))
    slopes = np.array(out)
    return np.where(slopes < SNAP_SLOPE, 0.0, slopes)  # no direction: P(up) exactly 1/2, not a whisper of noise


def apply_up_slopes(p: np.ndarray, slopes: np.ndarray, buckets: Buckets) -> np.ndarray:
    """Rescale each (n, h) distribution's up and down masses so P(up) = sigmoid(a_h logit P(up)), (N, H, K).

    The numpy twin of ``training.onnx_export.calibrated``'s in-graph step (same formula as
    ``ProbUpCalibrator.apply_to_probs``).
    """
    f = up_fractions(buckets)
    pu = np.clip(p @ f, 1e-6, 1 - 1e-6)
    target = (1.0 / (1.0 + np.exp(-np.asarray(slopes)[None, :] * _logit(pu))))[..., None]
    a, b = (p * f * f).sum(-1, keepdims=True), (p * f * (1 - f)).sum(-1, keepdims=True)
    c, d = (p * f).sum(-1, keepdims=True), (p * (1 - f)).sum(-1, keepdims=True)
    u = np.clip((target * d - b) / np.maximum(a - target * c, 1e-12), 1e-6, 1e6)
    q = p * (f * u + (1 - f))
    return q / q.sum(-1, keepdims=True)
