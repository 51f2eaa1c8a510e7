"""Ensemble of members weighted by a Thompson-sampling bandit on rolling out-of-sample reward.

Members are fitted on the training windows; the validation windows are then played in time order,
in rounds of ``block`` samples. Each member's reward per round is its mean log score (log p of the
realised buckets, averaged over horizons) or, with ``reward="sharpe"``, the Sharpe ratio within the
round of trading the sign of its predicted mean at the first horizon, taken relative to the round's
mean over members (all members face the same outcomes, so this removes most of the noise that
independent posteriors would otherwise see as uncertainty). Rewards update a Gaussian
posterior per member from discounted statistics (``discount`` < 1 forgets old rounds: a rolling
window). Each round the bandit samples every posterior and plays the argmax (Thompson sampling);
the ensemble's weights are the posterior probabilities that each member is best, estimated from
``n_draws`` samples with a fixed seed. The forecast is the weighted mixture of the members'
distributions, which stays a distribution; with exportable members it is one torch graph with the
weights as a buffer, so the weights travel inside the model file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from core.errors import ContractError
from training.models.base import Buckets, DistributionModel, Exportable, check_xy, normalise


@dataclass(frozen=True)
class EnsembleConfig:
    """Reward, round size, forgetting and posterior sampling of the bandit."""

    reward: Literal["log_score", "sharpe"] = "log_score"
    block: int = 100
    discount: float = 0.95
    n_draws: int = 4000
    refit_members: bool = True  # refit members on training + validation windows after weighting
    seed: int = 0


class Ensemble:
    """Thompson-sampling weighted mixture of DistributionModels."""

    name = "ensemble"

    def __init__(self, members: list[DistributionModel], buckets: Buckets, cfg: EnsembleConfig | None = None) -> None:
        if not members:
            raise ContractError("ensemble needs at least one member")
        self.members = members
        self.buckets = buckets
        self.cfg = cfg or EnsembleConfig()
        self.weights_ = np.full(len(members), 1.0 / len(members))
        self.stats_ = np.zeros((len(members), 3))  # discounted (count, sum, sum of squares) of round rewards
        self.played_: list[int] = []
        self.rng_ = np.random.default_rng(self.cfg.seed)

    def _rewards(self, probs: list[np.ndarray], y: np.ndarray) -> np.ndarray:
        """Per-member reward of one round: (M,)."""
        if self.cfg.reward == "log_score":
            idx = np.arange(len(y))[:, None], np.arange(y.shape[1])[None, :], y
            return np.array([np.log(np.maximum(p[idx], 1e-300)).mean() for p in probs])
        mids = self.buckets.mids_bps
        realised = mids[y[:, 0]]
        out = []
        for p in probs:
            pnl = np.sign(p[:, 0] @ mids) * realised
            out.append(pnl.mean() / (pnl.std() + 1e-9))
        return np.array(out)

    def _posterior(self) -> tuple[np.ndarray, np.ndarray]:
        n, s, ss = self.stats_.T
        mean = np.where(n > 0, s / np.maximum(n, 1e-12), 0.0)
        var = np.where(n > 1, np.maximum(ss / np.maximum(n, 1e-12) - mean**2, 1e-12), 1.0)
        return mean, np.sqrt(var / np.maximum(n, 1.0))

    def update(self, X: np.ndarray, y: np.ndarray) -> Ensemble:
        """Play the bandit over new out-of-sample windows in time order and refresh the weights."""
        X, y = check_xy(X, y, self.buckets.k)
        probs = [m.predict_proba(X) for m in self.members]
        for start in range(0, len(y), self.cfg.block):
            sl = slice(start, start + self.cfg.block)
            mean, sd = self._posterior()
            self.played_.append(int(np.argmax(self.rng_.normal(mean, sd))))  # Thompson draw
            r = self._rewards([p[sl] for p in probs], y[sl])
            r = r - r.mean()  # relative to the round's average: removes the shared "hard round" noise
            self.stats_ = self.cfg.discount * self.stats_ + np.stack([np.ones_like(r), r, r * r], axis=1)
        mean, sd = self._posterior()
        draws = np.random.default_rng(self.cfg.seed).normal(mean, sd, size=(self.cfg.n_draws, len(mean)))
        self.weights_ = np.bincount(draws.argmax(axis=1), minlength=len(mean)) / self.cfg.n_draws
        return self

    def fit(self, X, y, *, X_val=None, y_val=None) -> Ensemble:
        """Fit members on (X, y), weight them on (X_val, y_val) (required), optionally refit on both."""
        if X_val is None or y_val is None:
            raise ContractError("the ensemble's bandit needs out-of-sample windows: pass X_val and y_val")
        for m in self.members:
            m.fit(X, y)
        self.update(X_val, y_val)
        if self.cfg.refit_members:
            X_all, y_all = np.concatenate([X, X_val]), np.concatenate([y, y_val])
            for m in self.members:
                m.fit(X_all, y_all)
        return self

    def predict_proba(self, X) -> np.ndarray:
        """Return the weighted mixture of the members' (N, H, K) distributions."""
        X, _ = check_xy(X, None)
        mix = sum(w * m.predict_proba(X) for w, m in zip(self.weights_, self.members, strict=True) if w > 0)
        return normalise(mix)

    def to_torch_module(self):
        """One graph: every member's module and the weights as a buffer (all members must be exportable)."""
        import torch
        from torch import nn

        bad = [m.name for m in self.members if not isinstance(m, Exportable)]
        if bad:
            raise ContractError(f"ensemble members {bad} have no torch graph; export them separately or drop them")
        modules = nn.ModuleList(m.to_torch_module() for m in self.members)
        weights = torch.tensor(self.weights_, dtype=torch.float32)

        class Mixture(nn.Module):
            weights: torch.Tensor  # a buffer, declared for the type checker

            def __init__(self) -> None:
                super().__init__()
                self.members = modules
                self.register_buffer("weights", weights)

            def forward(self, features: torch.Tensor) -> torch.Tensor:
                probs = torch.stack([m(features) for m in self.members], dim=0)  # (M, B, H, K)
                return (probs * self.weights[:, None, None, None]).sum(dim=0)

        return Mixture().eval()
