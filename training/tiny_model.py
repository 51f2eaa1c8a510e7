"""A small tick model: the default champion for the scorer and the fixture of its tests.

(B, L, F) raw features -> normalise in-graph -> per-step projection -> attention-like pooling over
time plus the last step -> MLP -> (B, H, K) softmax over log-return buckets per horizon.
Untrained but seeded weights give a deterministic, non-trivial distribution, which is all the
scorer's contract tests need; the training package fits the real ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import torch
from torch import nn

from feature_store.registry import get as feature_set

TICK_FEATURES: tuple[str, ...] = feature_set("tick_v1").names  # model input order: the registry's
TICK_HORIZONS_S: tuple[int, ...] = (1, 5, 10, 30, 60, 120, 300, 600)


def bucket_edges_bps(k: int = 101, lo: float = -50.0, hi: float = 50.0) -> list[float]:
    """Return K+1 edges whose K bucket mids run from ``lo`` to ``hi`` bps in equal steps."""
    step = (hi - lo) / (k - 1)
    return [lo - step / 2 + i * step for i in range(k + 1)]


@dataclass(frozen=True)
class TinyTickConfig:
    """Shape and normalisation of the tiny tick model."""

    name: str = "tick_tiny"
    feature_set: str = "tick_v1"
    feature_names: tuple[str, ...] = TICK_FEATURES
    lookback: int = 60  # L: per-second steps the model sees
    horizons: tuple[int, ...] = TICK_HORIZONS_S
    n_buckets: int = 101  # K
    d_model: int = 32
    d_hidden: int = 64
    seed: int = 7
    # Per-feature location/scale applied inside the graph (raw features in, no Python preprocessing).
    feature_mean: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0, 2.0, 0.0, 0.0, 5.0, 20.0, 0.2, 0.2, 5.0e7)
    feature_std: tuple[float, ...] = (1e-4, 2e-4, 5e-4, 1e-3, 1.5, 0.5, 0.5, 4.0, 15.0, 0.1, 0.1, 4.0e7)

    @property
    def n_features(self) -> int:
        return len(self.feature_names)


class TinyTickModel(nn.Module):
    """(B, L, F) float32 -> (B, H, K) probabilities (softmax over K)."""

    mean: torch.Tensor  # buffers (register_buffer), declared for the type checker
    inv_std: torch.Tensor

    def __init__(self, cfg: TinyTickConfig) -> None:
        super().__init__()
        if len(cfg.feature_mean) != cfg.n_features or len(cfg.feature_std) != cfg.n_features:
            raise ValueError("feature_mean/feature_std must have one entry per feature")
        self.cfg = cfg
        torch.manual_seed(cfg.seed)
        self.register_buffer("mean", torch.tensor(cfg.feature_mean, dtype=torch.float32))
        self.register_buffer("inv_std", 1.0 / torch.tensor(cfg.feature_std, dtype=torch.float32))
        self.proj = nn.Linear(cfg.n_features, cfg.d_model)
        self.score = nn.Linear(cfg.d_model, 1)
        self.head = nn.Sequential(
            nn.Linear(2 * cfg.d_model, cfg.d_hidden),
            nn.GELU(),
            nn.Linear(cfg.d_hidden, len(cfg.horizons) * cfg.n_buckets),
        )
        # Centre the output around zero return and widen it with the horizon, so the untrained
        # model still yields plausible, horizon-dependent distributions.
        with torch.no_grad():
            mids = torch.linspace(-1.0, 1.0, cfg.n_buckets)
            # sd ~ 1 bp * sqrt(horizon), in units of the half range of the buckets
            widths = torch.tensor([min(0.02 * float(h) ** 0.5, 0.8) for h in cfg.horizons])
            prior = -(mids[None, :] ** 2) / (2 * widths[:, None] ** 2)  # (H, K)
            out = cast(nn.Linear, self.head[2])
            out.bias.copy_(prior.reshape(-1))
            out.weight.mul_(0.3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, _ = x.shape  # (B, L, F)
        z = (x - self.mean) * self.inv_std  # (B, L, F) normalised in-graph
        z = torch.clamp(z, -10.0, 10.0)
        h = torch.tanh(self.proj(z))  # (B, L, D)
        w = torch.softmax(self.score(h), dim=1)  # (B, L, 1) pooling weights over time
        pooled = (w * h).sum(dim=1)  # (B, D)
        last = h[:, -1, :]  # (B, D)
        logits = self.head(torch.cat([pooled, last], dim=-1))  # (B, H*K)
        logits = logits.reshape(b, len(self.cfg.horizons), self.cfg.n_buckets)  # (B, H, K)
        return torch.softmax(logits, dim=-1)


def example_inputs(cfg: TinyTickConfig, batch: int, seed: int = 11) -> torch.Tensor:
    """Draw raw feature windows around the normalisation statistics (deterministic)."""
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(batch, cfg.lookback, cfg.n_features, generator=gen)
    mean = torch.tensor(cfg.feature_mean, dtype=torch.float32)
    std = torch.tensor(cfg.feature_std, dtype=torch.float32)
    x = mean + z * std
    # Keep features that are positive by construction positive (vol, intensity, ADV, spread).
    for name in ("spread_bps", "trade_intensity", "quote_intensity", "rv_60s_ann", "rv_300s_ann", "adv_notional"):
        i = cfg.feature_names.index(name)
        x[..., i] = x[..., i].abs() + 1e-3 * std[i]
    return x.to(torch.float32)
