"""Position sizing from a predicted return distribution (DESIGN section 8), mirrored in Rust.

The Rust scorer (serving-rs/src/sizing.rs) implements the same formulas, step for step; the golden
vectors in contracts/golden/ keep them equal and scipy guards the formula (tests/serving). Parameters
come from ``contracts/sizing.json``, validated against its schema by the rules Rust applies.

1. Kelly exposure f* = argmax_f sum_k p_k log(1 + f (r_k - c sign f)) over the bucket mid returns
   r_k, by safeguarded Newton steps on the concave 1-D problem; 0 when neither side's expected
   return beats the cost c; |f*| <= kelly_max where one side has no losing outcome.
2. Exposure = sign(f*) min(alpha |f*|, vol cap, max NAV per symbol, ADV cap), with the vol cap
   min(target_vol / realized_vol, max_vol_scale): vol targeting caps, it does not multiply Kelly.
3. Guards cut the size to 0: drawdown kill switch (a published risk state), stale data, warm-up.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.errors import ConfigError, ContractError
from core.resources import contracts_dir
from feature_store import schema_check
from feature_store.contract import strict_json

DEFAULT_SIZING_PATH = contracts_dir() / "sizing.json"
SIZING_SCHEMA = "sizing.schema.json"

GUARD_DRAWDOWN = "drawdown_kill"
GUARD_STALE = "stale"
GUARD_WARMUP = "warmup"
NEWTON_MAX_STEPS = 100
NEWTON_RTOL = 1e-15


@dataclass(frozen=True)
class SizingConfig:
    """Sizing parameters; see contracts/sizing.schema.json for each field's meaning."""

    horizon: int
    kelly_alpha: float
    fee_bps: float
    slippage_bps: float
    target_vol: float
    realized_vol_feature: str | None
    max_vol_scale: float
    max_nav_frac: float
    adv_feature: str | None
    max_adv_share: float
    nav: float
    max_intraday_drawdown: float
    max_staleness_ms: int
    kelly_max: float

    @property
    def cost(self) -> float:
        """Cost c charged against each bet (fees + slippage) as a return."""
        return (self.fee_bps + self.slippage_bps) * 1e-4

    @classmethod
    def from_dict(cls, raw: dict, source: str = "sizing") -> SizingConfig:
        """Build from a mapping checked against contracts/sizing.schema.json (the rules Rust applies).

        Unknown, missing, mistyped, out-of-range or non-finite values are errors naming the key.
        """
        try:
            schema_check.check(raw, SIZING_SCHEMA, source)
        except ContractError as exc:
            raise ConfigError(str(exc)) from exc
        return cls(**raw)

    @classmethod
    def load(cls, path: str | Path = DEFAULT_SIZING_PATH) -> SizingConfig:
        """Read the JSON sizing config."""
        path = Path(path)
        try:
            raw = strict_json(path.read_bytes(), str(path))
        except (OSError, ContractError) as exc:
            raise ConfigError(f"{path}: cannot read sizing config: {exc}") from exc
        return cls.from_dict(raw, str(path))


@dataclass(frozen=True)
class RiskState:
    """Portfolio state the guards read (contracts/risk_state.schema.json, less its ts)."""

    nav: float
    intraday_drawdown: float = 0.0
    kill: bool = False


@dataclass(frozen=True)
class SizeResult:
    kelly: float  # full Kelly exposure f*, signed (+ long, - short), fraction of NAV
    kelly_frac: float  # alpha * f*
    vol_scale: float | None  # the vol cap min(target_vol / realized_vol, max_vol_scale); None: targeting off
    size: float  # signed exposure, fraction of NAV, after caps and guards
    notional: float  # size * NAV
    capped: tuple[str, ...]  # caps below alpha |f*| ("vol", "nav", "adv")
    guard: str | None


def _growth_slope(p: np.ndarray, a: np.ndarray, h: float) -> tuple[float, float]:
    """First and second derivative of sum p log(1 + h a) at h."""
    q = a / (1.0 + h * a)
    return float(np.dot(p, q)), -float(np.dot(p, q * q))


def kelly_exposure(p: Sequence[float], returns: Sequence[float], cost: float, kelly_max: float) -> float:
    """Return f* = argmax_f sum_k p_k log(1 + f (r_k - c sign f)), signed, |f*| <= kelly_max.

    The objective is concave on each side of 0 with slope sum p_k r_k - c (long) or its mirror
    (short) at 0, so at most one side can gain; 0 when neither does. On that side, with a_k the
    per-unit outcome net of c, the maximiser solves sum p_k a_k / (1 + h a_k) = 0 inside the domain
    1 + h a_k > 0: Newton steps from 0, falling back to bisection whenever a step leaves the
    bracket, until the step is below 1e-15 relative. Outcomes with p_k = 0 do not constrain.
    """
    prob = np.asarray(p, dtype=np.float64)
    r = np.asarray(returns, dtype=np.float64)
    live = prob > 0.0
    prob, r = prob[live], r[live]
    mean = float(np.dot(prob, r))
    if mean > cost:
        side, a = 1.0, r - cost
    elif mean < -cost:
        side, a = -1.0, -(r + cost)
    else:
        return 0.0
    worst = float(a.min())
    hi = min(-1.0 / worst, kelly_max) if worst < 0.0 else kelly_max
    if hi == kelly_max and (worst >= 0.0 or kelly_max < -1.0 / worst) and _growth_slope(prob, a, hi)[0] >= 0.0:
        return side * kelly_max
    lo, h = 0.0, 0.0
    for _ in range(NEWTON_MAX_STEPS):
        d1, d2 = _growth_slope(prob, a, h)
        if d1 == 0.0:
            break
        if d1 > 0.0:
            lo = h
        else:
            hi = h
        nxt = h - d1 / d2 if d2 < 0.0 else 0.5 * (lo + hi)
        if not (lo < nxt < hi):
            nxt = 0.5 * (lo + hi)
        done = abs(nxt - h) <= NEWTON_RTOL * max(1.0, h)
        h = nxt
        if done:
            break
    return side * h


def vol_cap(cfg: SizingConfig, realized_vol: float | None) -> float | None:
    """Return min(target_vol / realized_vol, max_vol_scale); None when vol targeting is off.

    A realised vol that is 0, negative or not finite cannot be trusted to scale anything: the
    cap falls back to max_vol_scale.
    """
    if realized_vol is None:
        return None
    if not (realized_vol > 0.0) or not math.isfinite(realized_vol):
        return cfg.max_vol_scale
    return min(cfg.target_vol / realized_vol, cfg.max_vol_scale)


def guard_for(cfg: SizingConfig, risk: RiskState, ts_ns: int, now_ns: int, warm: bool) -> str | None:
    """Return the guard that cuts the size to zero, if any (most severe first)."""
    if risk.kill or risk.intraday_drawdown >= cfg.max_intraday_drawdown:
        return GUARD_DRAWDOWN
    if cfg.max_staleness_ms > 0 and now_ns - ts_ns > cfg.max_staleness_ms * 1_000_000:
        return GUARD_STALE
    if not warm:
        return GUARD_WARMUP
    return None


def position_size(
    cfg: SizingConfig,
    risk: RiskState,
    *,
    probs: Sequence[float],
    returns: Sequence[float],
    realized_vol: float | None,
    adv_notional: float | None,
    guard: str | None,
) -> SizeResult:
    """Size one position from the horizon's bucket probabilities and mid returns (fractions)."""
    kelly = kelly_exposure(probs, returns, cfg.cost, cfg.kelly_max)
    kelly_frac = cfg.kelly_alpha * kelly
    want = abs(kelly_frac)
    vol = vol_cap(cfg, realized_vol)
    caps: list[tuple[str, float]] = [("nav", cfg.max_nav_frac)]
    if vol is not None:
        caps.insert(0, ("vol", vol))
    if adv_notional is not None:
        adv = adv_notional if math.isfinite(adv_notional) and adv_notional > 0.0 else 0.0
        caps.append(("adv", cfg.max_adv_share * adv / risk.nav))
    capped = tuple(name for name, cap in caps if cap < want)
    size = math.copysign(min([want] + [cap for _, cap in caps]), kelly) if kelly != 0.0 else 0.0
    if guard is not None:
        size = 0.0
    size = size + 0.0  # normalise -0.0 so JSON and Rust agree
    return SizeResult(
        kelly=kelly,
        kelly_frac=kelly_frac,
        vol_scale=vol,
        size=size,
        notional=size * risk.nav,
        capped=capped if kelly != 0.0 else (),
        guard=guard,
    )
