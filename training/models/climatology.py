"""Climatology: the training window's bucket frequencies per horizon, whatever the features say.

The floor every model must beat (DESIGN section 11). Add-``alpha`` smoothing keeps every bucket's
probability above zero so the log score of an unseen bucket stays finite.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from training.models.base import Buckets, check_xy, normalise


@dataclass(frozen=True)
class ClimatologyConfig:
    """Smoothing of the bucket counts (pseudo-count added to every bucket)."""

    alpha: float = 0.5


class Climatology:
    """Per-horizon unconditional bucket frequencies of the training labels."""

    name = "climatology"

    def __init__(self, buckets: Buckets | None = None, cfg: ClimatologyConfig | None = None) -> None:
        self.buckets = buckets or Buckets.default()
        self.cfg = cfg or ClimatologyConfig()
        self.probs_: np.ndarray | None = None  # (H, K)

    def fit(self, X, y, *, X_val=None, y_val=None) -> Climatology:
        """Count each horizon's training labels per bucket."""
        _, y = check_xy(X, y, self.buckets.k)
        counts = np.stack([np.bincount(y[:, h], minlength=self.buckets.k) for h in range(y.shape[1])])
        self.probs_ = normalise(counts + self.cfg.alpha)
        return self

    def predict_proba(self, X) -> np.ndarray:
        """Return the same (H, K) frequencies for every window: (N, H, K)."""
        X, _ = check_xy(X, None)
        if self.probs_ is None:
            raise RuntimeError("Climatology.predict_proba before fit")
        return np.broadcast_to(self.probs_, (X.shape[0], *self.probs_.shape)).copy()

    def to_torch_module(self):
        """Return a module emitting the stored frequencies for any (B, L, F) input."""
        import torch
        from torch import nn

        probs = torch.tensor(self.probs_, dtype=torch.float32)

        class Constant(nn.Module):
            probs: torch.Tensor  # a buffer, declared for the type checker

            def __init__(self) -> None:
                super().__init__()
                self.register_buffer("probs", probs)

            def forward(self, features: torch.Tensor) -> torch.Tensor:
                # (B, L, F) -> (B, H, K); 0 * sum keeps the batch dim dynamic in the exported graph
                zero = features[:, :1, :1].sum(dim=(1, 2))[:, None, None] * 0.0
                return self.probs[None] + zero

        return Constant().eval()
