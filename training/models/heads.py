"""Volatility-scaled output head: a per-horizon mixture of logistics on the EWMA volatility, bucketed.

A free softmax over K = 101 buckets per horizon must learn from few windows both where the mass
sits and how wide it is; the width moves with the volatility regime by a factor of several, and a
softmax has no notion that bucket k+1 lies next to bucket k. This head gives the encoder that
structure (as a discretised logistic mixture does for pixels, Salimans et al. 2017):

    sigma_t  = sqrt(EWMA of the window's squared one-step returns)    (in the graph, bps)
    r_h | x  ~ sum_m pi_hm(x) Logistic(mu = c_h sigma_t a_hm(x), s = c_h sigma_t exp(b_hm(x)))
    P(bucket k) = CDF(edge_k+1) - CDF(edge_k),  the end buckets take the tails

``c_h`` (per horizon, learned) starts at the training labels' spread over the mean sigma, so an
untrained head is already an EWMA-vol forecaster; the encoder learns the location (order flow),
the shape and any vol adjustments from the other features. Everything is matmul, sigmoid and
softmax, so it exports to ONNX as is.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

LOG_FLOOR = 1e-12


class VolMixtureHead(nn.Module):
    """(CLS vector (B, d), raw windows (B, L, F)) -> log bucket probabilities (B, H, K)."""

    ewma_w: torch.Tensor  # buffers, declared for the type checker
    edges: torch.Tensor
    var0: torch.Tensor

    def __init__(
        self,
        d: int,
        lookback: int,
        n_horizons: int,
        inner_edges_bps: np.ndarray,
        *,
        components: int = 3,
        ret_feature: int = 0,
        ret_unit_bps: float = 1e4,
        halflife: float = 20.0,
    ) -> None:
        super().__init__()
        self.h, self.m, self.ret_feature, self.unit = n_horizons, components, ret_feature, ret_unit_bps
        lam = 0.5 ** (1.0 / halflife)
        w = (1.0 - lam) * lam ** np.arange(lookback - 1, -1, -1, dtype=np.float64)  # newest return weighs most
        self.register_buffer("ewma_w", torch.tensor(w, dtype=torch.float32))
        self.tail_w = float(lam**lookback)  # weight of the unconditional variance (the EWMA's start)
        self.register_buffer("var0", torch.tensor(1.0))  # unconditional variance of one-step returns, set in fit
        self.register_buffer("edges", torch.tensor(np.asarray(inner_edges_bps), dtype=torch.float32))
        self.log_c = nn.Parameter(torch.zeros(n_horizons))
        self.out = nn.Linear(d, n_horizons * components * 3)
        nn.init.zeros_(self.out.weight)
        with torch.no_grad():  # start: equal weights, zero location, scales spread x0.5..x2 (fat tails)
            bias = self.out.bias.view(n_horizons, components, 3)
            bias.zero_()
            bias[:, :, 2] = torch.linspace(-math.log(2.0), math.log(2.0), components)

    def set_scale(self, ret_bps: np.ndarray, label_bps: np.ndarray) -> None:
        """Start from the data: the unconditional variance of one-step returns and each horizon's spread.

        ``ret_bps`` (N, L) are the windows' one-step returns, ``label_bps`` (N, H) the labels' bucket mids.
        """
        var = float(np.mean(ret_bps**2)) or 1.0
        self.var0.fill_(var)
        sigma = np.sqrt(ret_bps**2 @ self.ewma_w.numpy().astype(np.float64) + self.tail_w * var + 1e-6)
        spread = np.maximum(np.median(np.abs(label_bps), axis=0), 0.5) * 1.4826  # robust sd per horizon
        logistic = spread * math.sqrt(3.0) / math.pi
        self.log_c.data.copy_(torch.tensor(np.log(logistic / np.mean(sigma)), dtype=torch.float32))

    def sigma(self, features: torch.Tensor) -> torch.Tensor:
        """EWMA volatility (bps) after each window's last return: (B,)."""
        r = features[:, :, self.ret_feature] * self.unit
        return torch.sqrt((r * r) @ self.ewma_w + self.tail_w * self.var0 + 1e-6)

    def forward(self, z: torch.Tensor, features: torch.Tensor, shift: torch.Tensor | None = None) -> torch.Tensor:
        """Log bucket probabilities; ``shift`` (B, H) moves every component's location (in units of c_h sigma_t)."""
        raw = self.out(z).view(-1, self.h, self.m, 3)
        log_pi = torch.log_softmax(raw[..., 0], dim=-1)  # (B, H, M)
        base = self.sigma(features)[:, None, None] * torch.exp(self.log_c)[None, :, None]  # (B, H, 1)
        loc = raw[..., 1] if shift is None else raw[..., 1] + shift[:, :, None]
        mu = base * loc
        s = base * torch.exp(raw[..., 2].clamp(-5.0, 5.0))
        z = (self.edges[None, None, None, :] - mu[..., None]) / s[..., None]  # (B, H, M, K-1)
        zeros, ones = torch.zeros_like(z[..., :1]), torch.ones_like(z[..., :1])
        cdf = torch.cat([zeros, torch.sigmoid(z), ones], dim=-1)  # (B, H, M, K+1) at every edge, -inf..inf
        sf = torch.cat([ones, torch.sigmoid(-z), zeros], dim=-1)
        # a bucket above the component's centre from the survival function: a CDF within 6e-8 of 1 is
        # 1.0 in float32, which zeroed every upper-tail bucket (an up-jump scored 1e-12, a down-jump did not)
        upper = torch.cat([zeros, z], dim=-1) > 0  # (B, H, M, K): the bucket's lower edge is above mu
        p = torch.where(upper, sf[..., :-1] - sf[..., 1:], cdf[..., 1:] - cdf[..., :-1])
        p = (p * torch.exp(log_pi)[..., None]).sum(dim=2)  # (B, H, K)
        return torch.log(p.clamp_min(LOG_FLOOR))
