"""Drift of features and predictions against the training reference (PSI and KL), and the retrain event.

The reference is a sample of what the model was trained on (each feature's values; the model's
prob_up and mean-return forecasts on the validation windows). Live windows are compared column by
column on the reference's quantile bins:

    PSI = sum_i (c_i - r_i) ln(c_i / r_i)        KL(current || reference) = sum_i c_i ln(c_i / r_i)

with r, c the bin shares (floored at ``EPS`` so an empty bin stays finite). A column over either
threshold (strategy ``promotion.drift``) makes the report ``drifted``; ``emit_drift_event`` then
emits the Prefect event ``mps.drift.detected`` for the model, which the ``train`` deployment's
trigger (deployments/prefect.yaml) turns into a retrain.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

EPS = 1e-6
DRIFT_EVENT = "mps.drift.detected"


def _shares(x: np.ndarray, cuts: np.ndarray) -> np.ndarray:
    counts = np.bincount(np.searchsorted(cuts, x, side="right"), minlength=len(cuts) + 1).astype(np.float64)
    shares = np.maximum(counts / max(len(x), 1), EPS)
    return shares / shares.sum()


def quantile_cuts(reference: np.ndarray, bins: int = 10) -> np.ndarray:
    """Inner bin edges at the reference's quantiles (duplicates merged, so discrete columns work)."""
    ref = np.asarray(reference, dtype=np.float64)
    return np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1)[1:-1]))


def psi(reference: np.ndarray, current: np.ndarray, bins: int = 10) -> float:
    """Population stability index of ``current`` against ``reference`` on the reference's quantile bins."""
    cuts = quantile_cuts(reference, bins)
    r, c = _shares(np.asarray(reference, np.float64), cuts), _shares(np.asarray(current, np.float64), cuts)
    return float(((c - r) * np.log(c / r)).sum())


def kl(reference: np.ndarray, current: np.ndarray, bins: int = 10) -> float:
    """KL(current || reference) of the binned distributions (nats)."""
    cuts = quantile_cuts(reference, bins)
    r, c = _shares(np.asarray(reference, np.float64), cuts), _shares(np.asarray(current, np.float64), cuts)
    return float((c * np.log(c / r)).sum())


@dataclass(frozen=True)
class DriftReport:
    """PSI and KL per column (features by name, predictions as ``pred.<name>``) and what crossed."""

    psi: dict[str, float]
    kl: dict[str, float]
    psi_threshold: float
    kl_threshold: float
    drifted: tuple[str, ...] = field(default=())

    def payload(self) -> dict:
        """The event payload: the columns that drifted and their statistics."""
        return {
            "drifted": list(self.drifted),
            "psi": {k: self.psi[k] for k in self.drifted},
            "kl": {k: self.kl[k] for k in self.drifted},
            "psi_threshold": self.psi_threshold,
            "kl_threshold": self.kl_threshold,
        }


def drift_report(reference: dict[str, np.ndarray], current: dict[str, np.ndarray], cfg) -> DriftReport:
    """Compare every column present in both mappings; ``cfg`` is the strategy's ``promotion.drift``."""
    missing = sorted(set(reference) - set(current))
    if missing:
        raise ValueError(f"current data lacks reference columns {missing}")
    p = {k: psi(reference[k], current[k], cfg.bins) for k in reference}
    d = {k: kl(reference[k], current[k], cfg.bins) for k in reference}
    drifted = tuple(k for k in reference if p[k] > cfg.psi or d[k] > cfg.kl)
    return DriftReport(p, d, cfg.psi, cfg.kl, drifted)


def window_columns(X: np.ndarray, feature_names: tuple[str, ...], probs: np.ndarray | None = None, edges_bps=None):
    """Columns to compare from windows (N, L, F) (each feature's last step) and forecasts (N, H, K)."""
    cols = {name: X[:, -1, i] for i, name in enumerate(feature_names)}
    if probs is not None:
        e = np.asarray(edges_bps, dtype=np.float64)
        mids = 0.5 * (e[:-1] + e[1:])
        frac = (mids > 0.0).astype(np.float64)  # P(up) = mass of buckets with mid > 0 (training.metrics.up_mask)
        for h in range(probs.shape[1]):
            cols[f"pred.prob_up.h{h}"] = probs[:, h, :] @ frac
            cols[f"pred.mean_bps.h{h}"] = probs[:, h, :] @ mids
    return cols


def emit_drift_event(model_name: str, report: DriftReport):
    """Emit ``mps.drift.detected`` for ``model_name`` (a no-op returning None when nothing drifted)."""
    if not report.drifted:
        return None
    from prefect.events import emit_event

    return emit_event(
        event=DRIFT_EVENT,
        resource={"prefect.resource.id": f"mps.model.{model_name}", "mps.model": model_name},
        payload=report.payload(),
    )
