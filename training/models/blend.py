"""A learned model blended with the EWMA-t baseline, per horizon, in one exported graph.

    p_h = w_h p_model,h + (1 - w_h) p_ewma_t,h

On a few days of data a network's forecast beats the volatility baseline on some days and loses
on others; a linear pool keeps what each gets right (the log score is concave in the forecast, so
a mixture scores at least the weighted mean of its members, and better where they disagree). The
weights are fitted after both members, by the log score on the chronologically later calibration
slice; the gates then judge the blend on the test days like any other candidate. ``w_h = 1`` is
the model alone, ``0`` the baseline alone.
"""

from __future__ import annotations

import numpy as np
from scipy import optimize

from training.models.base import check_xy, normalise
from training.models.ewma_t import EwmaT


def fit_blend_weights(p_model: np.ndarray, p_base: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per-horizon weight of the model (H,) in [0, 1] minimising the mean log score on labels ``y`` (N, H)."""
    out = []
    for h in range(y.shape[1]):
        a = p_model[np.arange(len(y)), h, y[:, h]]
        b = p_base[np.arange(len(y)), h, y[:, h]]

        def loss(w: float, a=a, b=b) -> float:
            return float(-np.log(np.maximum(w * a + (1.0 - w) * b, 1e-300)).mean())

        out.append(float(optimize.minimize_scalar(loss, bounds=(0.0, 1.0), method="bounded").x))
    return np.array(out)


class Blend:
    """Fitted model + fitted EwmaT, pooled with per-horizon weights (DistributionModel, Exportable)."""

    name = "blend"

    def __init__(self, model, base: EwmaT, lookback: int) -> None:
        self.model, self.base, self.lookback = model, base, lookback
        self.weights_: np.ndarray | None = None
        self.base_graph_ = base.torch_graph(lookback)

    def _base_proba(self, X: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            return self.base_graph_(torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32))).numpy()

    def fit(self, X, y, *, X_val=None, y_val=None) -> Blend:
        """Fit the weights on (X, y), the calibration windows (both members are already fitted)."""
        X, y = check_xy(X, y)
        self.weights_ = fit_blend_weights(self.model.predict_proba(X), self._base_proba(X), y)
        return self

    def predict_proba(self, X) -> np.ndarray:
        """Return the pooled (N, H, K) forecast (the baseline through its graph, as exported)."""
        X, _ = check_xy(X, None)
        if self.weights_ is None:
            raise RuntimeError("Blend.predict_proba before fit")
        w = self.weights_[None, :, None]
        return normalise(w * self.model.predict_proba(X) + (1.0 - w) * self._base_proba(X), 0.0)

    def to_torch_module(self):
        """One graph: the model's module, the baseline's and the weights as a buffer."""
        import torch
        from torch import nn

        if self.weights_ is None:
            raise RuntimeError("Blend.to_torch_module before fit")
        model, base = self.model.to_torch_module(), self.base_graph_
        weights = torch.tensor(self.weights_, dtype=torch.float32)[None, :, None]

        class BlendGraph(nn.Module):
            w: torch.Tensor  # a buffer, declared for the type checker

            def __init__(self) -> None:
                super().__init__()
                self.model, self.base = model, base
                self.register_buffer("w", weights)

            def forward(self, features: torch.Tensor) -> torch.Tensor:
                return self.w * self.model(features) + (1.0 - self.w) * self.base(features)

        return BlendGraph().eval()
