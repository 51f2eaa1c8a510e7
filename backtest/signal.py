"""Signal from a model's bucket probabilities (DESIGN section 8): the Python reference of the scorer.

The Rust scorer (serving-rs/src/signal.rs) computes the same fields with the same formulas; the
golden vectors in contracts/golden/ hold both to 1e-6. Returns are log-returns as fractions
(1 bp = 1e-4). Quantiles read the density as uniform inside a bucket (the CDF is piecewise
linear); the direction figures read each bucket as the point mass at its mid r_k, as Kelly sizing
does: P(up) is the mass of buckets with r_k > 0, G and L the conditional means of those above and
below zero, and the bucket around zero is flat (training.metrics.up_mask counts "up" the same way).
The conformal band is the central interval widened by the model's qhat, snapped outward to bucket
edges (``feature_store.discretize.snap_band``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from backtest.sizing import RiskState, SizingConfig, guard_for, position_size
from core.errors import ContractError
from feature_store.discretize import snap_band

QUANTILE_LEVELS: tuple[float, ...] = (0.05, 0.25, 0.5, 0.75, 0.95)
QUANTILE_NAMES: tuple[str, ...] = ("q05", "q25", "q50", "q75", "q95")
SIGNAL_SCHEMA = "signal.v1"
FLAT_TOLERANCE = 1e-6  # as training.metrics.FLAT_TOLERANCE (backtest does not import training)


def quantile(p: np.ndarray, edges: np.ndarray, q: float) -> float:
    """Quantile ``q`` of the piecewise-uniform distribution with bucket masses ``p``."""
    cdf = np.cumsum(p)
    k = int(np.searchsorted(cdf, q, side="left"))
    k = min(k, len(p) - 1)
    c_lo = cdf[k] - p[k]
    if p[k] <= 0.0:
        return float(edges[k])
    t = min(max((q - c_lo) / p[k], 0.0), 1.0)
    return float(edges[k] + t * (edges[k + 1] - edges[k]))


def summarize_all(probs: np.ndarray, edges_bps: Sequence[float]) -> dict[str, np.ndarray]:
    """Summarise every horizon of (H, K) probabilities at once: moments, P(up), G, L, quantiles, conf.

    Each value is an (H,) array; ``_p`` (normalised probs), ``_cdf`` and ``_e`` (edges as returns)
    are kept for further quantiles.
    """
    p = np.atleast_2d(np.asarray(probs, dtype=np.float64))
    total = p.sum(axis=1, keepdims=True)
    if not np.all(total > 0.0) or not np.all(np.isfinite(p)) or np.any(p < 0.0):
        raise ContractError("probabilities must be finite, non-negative and sum to > 0")
    p = p / total
    e = np.asarray(edges_bps, dtype=np.float64) * 1e-4
    lo, hi = e[:-1], e[1:]
    width = hi - lo
    mid = 0.5 * (lo + hi)
    mean = p @ mid
    var = p @ (mid * mid) - mean * mean
    up_mass = p * (mid > FLAT_TOLERANCE * width)  # a mid within 1e-6 widths of 0 is the flat bucket
    dn_mass = p * (mid < -FLAT_TOLERANCE * width)
    p_up = up_mass.sum(axis=1)
    p_dn = dn_mass.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        gain = np.where(p_up > 0.0, (up_mass @ mid) / p_up, 0.0)
        loss = np.where(p_dn > 0.0, -(dn_mass @ mid) / p_dn, 0.0)
        plogp = np.where(p > 0.0, p * np.log(p), 0.0)
    cdf = np.cumsum(p, axis=1)
    out = {
        "prob_up": p_up,
        "mean": mean,
        "std": np.sqrt(np.maximum(var, 0.0)),
        "avg_gain": gain,
        "avg_loss": loss,
        "conf": 1.0 + plogp.sum(axis=1) / math.log(p.shape[1]),
        "_p": p,
        "_cdf": cdf,
        "_e": e,
    }
    for name, level in zip(QUANTILE_NAMES, QUANTILE_LEVELS, strict=True):
        out[name] = quantiles_at(p, cdf, e, level)
    return out


def quantiles_at(p: np.ndarray, cdf: np.ndarray, edges: np.ndarray, q: float) -> np.ndarray:
    """Quantile ``q`` of each row's piecewise-uniform distribution (rows of ``p``)."""
    k = np.minimum((cdf < q).sum(axis=1), p.shape[1] - 1)
    rows = np.arange(p.shape[0])
    pk = p[rows, k]
    c_lo = cdf[rows, k] - pk
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.clip((q - c_lo) / pk, 0.0, 1.0)
    return np.where(pk > 0.0, edges[k] + t * (edges[k + 1] - edges[k]), edges[k])


def summarize(probs_h: np.ndarray, edges_bps: Sequence[float]) -> dict:
    """Summarise one horizon's distribution (scalars); see ``summarize_all``."""
    s = summarize_all(np.asarray(probs_h)[None, :], edges_bps)
    return {k: (v if k.startswith("_") else float(v[0])) for k, v in s.items()}


def net_of_costs(gross: float, cost: float) -> float:
    """Expected return of the better side after costs: sign(gross) * max(|gross| - cost, 0)."""
    return math.copysign(max(abs(gross) - cost, 0.0), gross) + 0.0


def compute_signal(
    probs: np.ndarray,
    meta,
    cfg: SizingConfig,
    *,
    symbol_id: str,
    tf: str,
    ts: int,
    known_at: int,
    seq: int,
    last_features: Sequence[float] | np.ndarray,
    warm: bool,
    risk: RiskState,
    now_ns: int,
) -> dict:
    """Build the Signal (contracts/signal.schema.json) for one update from its (H, K) probs.

    ``meta`` is the model's ``ModelMetadata``; ``last_features`` the raw values of the newest
    update (realised vol and ADV are read from it by name); ``warm`` whether the symbol's ring
    holds a full lookback. ``published_at`` is left to the publisher.
    """
    probs = np.asarray(probs)
    if probs.shape != (len(meta.horizons), meta.n_buckets):
        raise ContractError(f"probs shape {probs.shape} != (H={len(meta.horizons)}, K={meta.n_buckets})")
    if cfg.horizon not in meta.horizons:
        raise ContractError(f"sizing horizon {cfg.horizon} not among model horizons {list(meta.horizons)}")
    hi = meta.horizons.index(cfg.horizon)
    names = list(meta.feature_names)
    s = summarize_all(probs, meta.bucket_edges_bps)
    distribution = [
        {"horizon": int(h), **{k: float(s[k][i]) for k in ("prob_up", "mean", "std", "q05", "q50", "q95", "conf")}}
        for i, h in enumerate(meta.horizons)
    ]
    chosen = {k: float(v[hi]) for k, v in s.items() if not k.startswith("_")}
    p, cdf, e = s["_p"][hi : hi + 1], s["_cdf"][hi : hi + 1], s["_e"]
    alpha = meta.conformal_alpha
    qhat = meta.conformal_qhat_bps[hi] * 1e-4
    lo_q, hi_q = quantiles_at(p, cdf, e, alpha / 2)[0], quantiles_at(p, cdf, e, 1.0 - alpha / 2)[0]
    band = snap_band(lo_q, hi_q, qhat, e)  # whole buckets, as training.conformal calibrated qhat
    band_lo, band_hi = float(band[0]), float(band[1])
    expected = net_of_costs(chosen["mean"], cfg.cost)
    rv = float(last_features[names.index(cfg.realized_vol_feature)]) if cfg.realized_vol_feature else None
    adv = float(last_features[names.index(cfg.adv_feature)]) if cfg.adv_feature else None
    guard = guard_for(cfg, risk, ts, now_ns, warm)
    sized = position_size(
        cfg,
        risk,
        probs=s["_p"][hi],
        returns=np.expm1(0.5 * (e[:-1] + e[1:])),  # simple returns of the bucket mids
        realized_vol=rv,
        adv_notional=adv,
        guard=guard,
    )
    return {
        "schema": SIGNAL_SCHEMA,
        "symbol_id": symbol_id,
        "tf": tf,
        "ts": int(ts),
        "known_at": int(known_at),
        "seq": int(seq),
        "model": meta.model_name,
        "model_version": meta.model_version,
        "horizon": int(cfg.horizon),
        "horizon_unit": meta.horizon_unit,
        "prob_up": chosen["prob_up"],
        "expected_return": expected,
        "expected_return_gross": chosen["mean"],
        "std": chosen["std"],
        "q05": chosen["q05"],
        "q25": chosen["q25"],
        "q50": chosen["q50"],
        "q75": chosen["q75"],
        "q95": chosen["q95"],
        "band_lo": band_lo,
        "band_hi": band_hi,
        "band_alpha": alpha,
        "conf": chosen["conf"],
        "avg_gain": chosen["avg_gain"],
        "avg_loss": chosen["avg_loss"],
        "kelly": sized.kelly,
        "kelly_frac": sized.kelly_frac,
        "vol_scale": sized.vol_scale,
        "size": sized.size,
        "notional": sized.notional,
        "capped": list(sized.capped),
        "guard": sized.guard,
        "distribution": distribution,
    }


NUMERIC_FIELDS: tuple[str, ...] = (
    "prob_up",
    "expected_return",
    "expected_return_gross",
    "std",
    "q05",
    "q25",
    "q50",
    "q75",
    "q95",
    "band_lo",
    "band_hi",
    "conf",
    "avg_gain",
    "avg_loss",
    "kelly",
    "kelly_frac",
    "size",
)  # vol_scale may be null (vol targeting off): compare it on its own
