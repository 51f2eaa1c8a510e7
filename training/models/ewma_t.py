"""EWMA-volatility Student-t baseline: RiskMetrics variance of the window's returns, fat tails fitted.

For a window ending at t, sigma_t^2 is the exponentially weighted mean of the squared one-step
returns in the window (started from the training window's unconditional variance). The
``h``-th horizon's return is Student-t with zero mean, scale ``c_h * sigma_t`` and ``nu_h``
degrees of freedom; ``c_h`` and ``nu_h`` are fitted per horizon by maximising the *discretised*
likelihood of the training bucket labels, so clipping into the tail buckets is accounted for and
no horizon length in steps has to be assumed (``c_h`` absorbs the sqrt(h) scaling).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize, stats

from training.models.base import Buckets, check_xy

NU_GRID = (2.5, 3.0, 4.0, 5.0, 7.0, 10.0, 20.0, 50.0)


@dataclass(frozen=True)
class EwmaTConfig:
    """Which feature is the one-step log return, its unit, and the EWMA half-life in steps."""

    ret_feature: int = 0  # index of the one-step log return in the feature vector
    ret_unit_bps: float = 1e4  # multiply the feature by this to get bps (1e4 for a plain log return)
    halflife: float = 20.0  # steps
    max_fit_samples: int = 20_000  # (c_h, nu_h) are fitted on an evenly spaced subsample of this size


def ewma_variance(r: np.ndarray, halflife: float, var0: float) -> np.ndarray:
    """Return the EWMA variance after each window's last return: r (N, L) -> (N,)."""
    lam = 0.5 ** (1.0 / halflife)
    v = np.full(r.shape[0], var0, dtype=np.float64)
    for j in range(r.shape[1]):
        v = lam * v + (1.0 - lam) * r[:, j] ** 2
    return v


def bucket_loglik(y: np.ndarray, scale: np.ndarray, nu: float, buckets: Buckets) -> float:
    """Sum of log P(label bucket) under a zero-mean Student-t with per-sample ``scale``."""
    e = np.concatenate([[-np.inf], buckets.inner_edges_bps, [np.inf]])
    p = stats.t.cdf(e[y + 1] / scale, nu) - stats.t.cdf(e[y] / scale, nu)
    return float(np.log(np.maximum(p, 1e-300)).sum())


class EwmaT:
    """Zero-mean Student-t with EWMA volatility, discretised into the buckets."""

    name = "ewma_t"

    def __init__(self, buckets: Buckets | None = None, cfg: EwmaTConfig | None = None) -> None:
        self.buckets = buckets or Buckets.default()
        self.cfg = cfg or EwmaTConfig()
        self.var0_: float = 1.0
        self.scale_: np.ndarray | None = None  # (H,) c_h
        self.nu_: np.ndarray | None = None  # (H,)

    def _sigma(self, X: np.ndarray) -> np.ndarray:
        r = X[:, :, self.cfg.ret_feature].astype(np.float64) * self.cfg.ret_unit_bps
        return np.sqrt(np.maximum(ewma_variance(r, self.cfg.halflife, self.var0_), 1e-12))

    def fit(self, X, y, *, X_val=None, y_val=None) -> EwmaT:
        """Fit the unconditional variance, then (c_h, nu_h) per horizon by discretised maximum likelihood."""
        X, y = check_xy(X, y, self.buckets.k)
        r = X[:, :, self.cfg.ret_feature].astype(np.float64) * self.cfg.ret_unit_bps
        self.var0_ = float(np.mean(r**2)) or 1.0
        step = max(1, len(X) // self.cfg.max_fit_samples)
        X, y = X[::step], y[::step]
        sigma = self._sigma(X)
        scales, nus = [], []
        for h in range(y.shape[1]):
            best = (-np.inf, 1.0, 5.0)
            for nu in NU_GRID:
                res = optimize.minimize_scalar(
                    lambda lc, nu=nu, h=h: -bucket_loglik(y[:, h], np.exp(lc) * sigma, nu, self.buckets),
                    bounds=(np.log(1e-2), np.log(1e3)),
                    method="bounded",
                    options={"xatol": 1e-3},
                )
                if -res.fun > best[0]:
                    best = (-res.fun, float(np.exp(res.x)), nu)
            scales.append(best[1])
            nus.append(best[2])
        self.scale_, self.nu_ = np.array(scales), np.array(nus)
        return self

    def predict_proba(self, X) -> np.ndarray:
        """Discretise each window's per-horizon Student-t into the buckets: (N, H, K)."""
        X, _ = check_xy(X, None)
        if self.scale_ is None or self.nu_ is None:
            raise RuntimeError("EwmaT.predict_proba before fit")
        scale = self._sigma(X)[:, None, None] * self.scale_[None, :, None]  # (N, H, 1)
        nu = self.nu_[None, :, None]
        return self.buckets.from_cdf(lambda e: stats.t.cdf(e / scale, nu))

    def torch_graph(self, lookback: int, grid_step: float = 0.05, grid_max: float = 400.0):
        """The forecast as a torch graph (B, lookback, F) -> (B, H, K), for blending in one exported model.

        The EWMA is one matmul over the window; each horizon's Student-t CDF is a table on a grid of
        standardised returns (step ``grid_step``, clamped at +-``grid_max``), linearly interpolated.
        """
        import torch
        from torch import nn

        if self.scale_ is None or self.nu_ is None:
            raise RuntimeError("EwmaT.torch_graph before fit")
        lam = 0.5 ** (1.0 / self.cfg.halflife)
        w = (1.0 - lam) * lam ** np.arange(lookback - 1, -1, -1, dtype=np.float64)
        grid = np.arange(-grid_max, grid_max + grid_step / 2, grid_step)
        table = np.stack([stats.t.cdf(grid, nu) for nu in self.nu_])  # (H, G)
        cfg, var0, scale, edges = self.cfg, self.var0_, self.scale_, self.buckets.inner_edges_bps

        class EwmaTGraph(nn.Module):
            w: torch.Tensor  # buffers, declared for the type checker
            table: torch.Tensor
            scale: torch.Tensor
            edges: torch.Tensor

            def __init__(self) -> None:
                super().__init__()
                self.register_buffer("w", torch.tensor(w, dtype=torch.float32))
                self.register_buffer("table", torch.tensor(table, dtype=torch.float64))
                self.register_buffer("scale", torch.tensor(scale, dtype=torch.float32)[None, :, None])
                self.register_buffer("edges", torch.tensor(edges, dtype=torch.float32))
                self.tail = float(lam**lookback * var0)

            def forward(self, features: torch.Tensor) -> torch.Tensor:
                r = features[:, :, cfg.ret_feature] * cfg.ret_unit_bps
                sigma = torch.sqrt(((r * r) @ self.w + self.tail).clamp_min(1e-12))  # (B,)
                z = self.edges[None, None, :] / (sigma[:, None, None] * self.scale)  # (B, H, K-1)
                # float64 from here: a grid position near 8000 in float32 keeps only ~3 digits of its fraction
                pos = ((z.double() + grid_max) / grid_step).clamp(0.0, self.table.shape[1] - 1.001)
                i0 = torch.floor(pos)
                frac = pos - i0
                idx = i0.long()
                tab = self.table[None].expand(z.shape[0], -1, -1)
                lo, hi = torch.gather(tab, 2, idx), torch.gather(tab, 2, idx + 1)
                # the differences in float64 too: a CDF within 6e-8 of 1 is 1.0 in float32, which zeroed
                # every upper-tail bucket (an up-jump scored 1e-12 where a down-jump kept its t tail)
                cdf = lo + (hi - lo) * frac
                cdf = torch.cat([torch.zeros_like(cdf[..., :1]), cdf, torch.ones_like(cdf[..., :1])], dim=-1)
                p = (cdf[..., 1:] - cdf[..., :-1]).clamp_min(1e-12)
                return (p / p.sum(-1, keepdim=True)).float()

        return EwmaTGraph().eval()
