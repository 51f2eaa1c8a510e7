"""GARCH(1,1)-t baseline for bars (``arch``), its variance forecasts discretised into the buckets.

``fit`` estimates (omega, alpha, beta, nu) with ``arch`` on the one-step returns the training
windows end with (samples must be in time order, one series). ``predict_proba`` runs the fitted
GARCH recursion over each window's L returns (started from the training variance, so a
window's forecast depends on that window only, as in the scorer), forecasts the variance of the
sum of the next ``h`` returns, V_h = sum_j E[s2_(t+j)], and
uses a Student-t with the fitted nu and variance V_h. A sum of GARCH-t returns is not exactly t;
the approximation is the usual one and is what the baseline is meant to be.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from core.errors import ConfigError
from training.models.base import Buckets, check_xy


@dataclass(frozen=True)
class GarchTConfig:
    """Return feature, its unit, and each horizon's length in steps (bars)."""

    horizon_steps: tuple[int, ...] = (1, 5, 20)
    ret_feature: int = 0
    ret_unit_bps: float = 1e4


class GarchT:
    """GARCH(1,1) with Student-t innovations, fitted by ``arch``, zero mean."""

    name = "garch_t"

    def __init__(self, buckets: Buckets | None = None, cfg: GarchTConfig | None = None) -> None:
        self.buckets = buckets or Buckets.default()
        self.cfg = cfg or GarchTConfig()
        self.params_: dict[str, float] | None = None
        self.var0_ = 1.0  # training variance: where each window's recursion starts

    def fit(self, X, y, *, X_val=None, y_val=None) -> GarchT:
        """Estimate GARCH(1,1)-t by maximum likelihood (``arch``) on the windows' last returns."""
        from arch import arch_model

        X, y = check_xy(X, y, self.buckets.k)
        if y.shape[1] != len(self.cfg.horizon_steps):
            raise ConfigError(f"garch_t: {y.shape[1]} horizons in y but horizon_steps={self.cfg.horizon_steps}")
        r = X[:, -1, self.cfg.ret_feature].astype(np.float64) * self.cfg.ret_unit_bps
        res = arch_model(r, mean="Zero", vol="GARCH", p=1, q=1, dist="t", rescale=False).fit(disp="off")
        p = res.params
        self.var0_ = float(np.var(r)) or 1.0
        self.params_ = {"omega": p["omega"], "alpha": p["alpha[1]"], "beta": p["beta[1]"], "nu": p["nu"]}
        return self

    def variance_forecast(self, X: np.ndarray) -> np.ndarray:
        """Return the variance (bps^2) of the summed return over each horizon: (N, H)."""
        if self.params_ is None:
            raise RuntimeError("GarchT used before fit")
        om, a, b = self.params_["omega"], self.params_["alpha"], self.params_["beta"]
        persistence = a + b
        r = X[:, :, self.cfg.ret_feature].astype(np.float64) * self.cfg.ret_unit_bps
        s2 = np.full(r.shape[0], self.var0_)
        for j in range(r.shape[1]):
            s2 = om + a * r[:, j] ** 2 + b * s2  # after step j: variance of the next return
        out = []
        for h in self.cfg.horizon_steps:
            # E[s2_(t+1+j)] = om * (1 + p + ... + p^(j-1)) + p^j s2_(t+1): stable as p -> 1 (IGARCH fits)
            powers = persistence ** np.arange(h)
            geo = np.concatenate([[0.0], np.cumsum(powers)[:-1]])
            out.append(om * geo.sum() + powers.sum() * s2)
        return np.maximum(np.stack(out, axis=1), 1e-12)

    def predict_proba(self, X) -> np.ndarray:
        """Discretise the per-horizon Student-t into the buckets: (N, H, K)."""
        X, _ = check_xy(X, None)
        nu = self.params_["nu"] if self.params_ else 5.0
        scale = np.sqrt(self.variance_forecast(X) * (nu - 2.0) / nu)[:, :, None]  # (N, H, 1)
        return self.buckets.from_cdf(lambda e: stats.t.cdf(e / scale, nu))
