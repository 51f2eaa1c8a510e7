"""Losses over ordered buckets: earth mover's distance and Gaussian soft-label cross entropy.

Buckets are ordered (they are return intervals), so a forecast one bucket off should cost less than
one fifty buckets off; plain cross entropy ignores that. Two remedies, usable alone or mixed:

- EMD (Hou, Yu & Samaras 2016): for 1-D ordered classes the earth mover's distance is the distance
  between CDFs; order 1 is sum_k |P_k - Q_k| (in bucket widths), order 2 is its squared form
  sum_k (P_k - Q_k)^2 (the ranked probability score, up to 1/(K-1)), smooth and proper.
- Soft labels: the target bucket is smeared with a Gaussian kernel of ``sigma`` buckets, so
  neighbouring buckets share the mass; sigma -> 0 gives the one-hot cross entropy back.

All functions take logits or probabilities shaped (B, H, K) and integer targets (B, H), and return
a scalar mean over batch and horizons.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def soft_labels(y: torch.Tensor, k: int, sigma: float) -> torch.Tensor:
    """Gaussian soft targets around bucket ``y``: (B, H) int -> (B, H, K), each row sums to one."""
    if sigma <= 0:
        return F.one_hot(y, k).to(torch.float32)
    idx = torch.arange(k, device=y.device, dtype=torch.float32)
    w = torch.exp(-0.5 * ((idx - y[..., None].to(torch.float32)) / sigma) ** 2)
    return w / w.sum(dim=-1, keepdim=True)


def soft_cross_entropy(logits: torch.Tensor, y: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
    """Cross entropy of ``logits`` (B, H, K) against Gaussian soft labels of width ``sigma`` buckets."""
    q = soft_labels(y, logits.shape[-1], sigma)
    return -(q * F.log_softmax(logits.float(), dim=-1)).sum(dim=-1).mean()


def emd(p: torch.Tensor, q: torch.Tensor, order: int = 2) -> torch.Tensor:
    """Earth mover's distance between distributions over ordered buckets, per row: (..., K) -> (...).

    Order 1 is in bucket widths; order 2 is the sum of squared CDF differences.
    """
    d = torch.cumsum(p, dim=-1) - torch.cumsum(q, dim=-1)
    return d.abs().sum(dim=-1) if order == 1 else (d * d).sum(dim=-1)


def emd_loss(logits: torch.Tensor, y: torch.Tensor, order: int = 2, sigma: float = 0.0) -> torch.Tensor:
    """Mean EMD between softmax(``logits``) and the (optionally soft) labels ``y``."""
    p = torch.softmax(logits.float(), dim=-1)
    return emd(p, soft_labels(y, logits.shape[-1], sigma), order).mean()


def mixed_loss(
    logits: torch.Tensor, y: torch.Tensor, *, sigma: float = 1.0, emd_weight: float = 0.0, emd_order: int = 2
) -> torch.Tensor:
    """Soft-label cross entropy plus ``emd_weight`` times EMD (both means over batch and horizons)."""
    loss = soft_cross_entropy(logits, y, sigma)
    if emd_weight:
        loss = loss + emd_weight * emd_loss(logits, y, emd_order)
    return loss
