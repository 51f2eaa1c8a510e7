"""Position sizing from a predicted return distribution (DESIGN section 8), mirrored in Rust.

The Rust scorer (serving-rs/src/sizing.rs) implements the same formulas; the golden vectors in
contracts/golden/ keep them equal. Parameters come from ``contracts/sizing.json`` (schema beside
it), read by both sides: never copy a constant from here into Rust.

Steps, in order: fractional Kelly from (p, G, L) -> zero when costs eat the edge -> vol-target
scaling -> caps (NAV per symbol, ADV share) -> guards (drawdown kill switch, stale data, warm-up).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from core.errors import ConfigError, ContractError
from core.resources import contracts_dir
from feature_store import schema_check
from feature_store.contract import strict_json

DEFAULT_SIZING_PATH = contracts_dir() / "sizing.json"
SIZING_SCHEMA = "sizing.schema.json"

GUARD_DRAWDOWN = "drawdown_kill"
GUARD_STALE = "stale"
GUARD_WARMUP = "warmup"


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

    @property
    def cost(self) -> float:
        """Per-trade cost (fees + slippage) as a return."""
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
    """Portfolio state the sizing needs: NAV and today's drawdown (fraction of NAV, >= 0)."""

    nav: float
    intraday_drawdown: float = 0.0


@dataclass(frozen=True)
class SizeResult:
    kelly: float  # full Kelly fraction, signed (+ long, - short)
    kelly_frac: float  # alpha * kelly
    vol_scale: float  # min(target_vol / realized_vol, max_vol_scale)
    size: float  # signed fraction of NAV after caps and guards
    notional: float  # size * NAV
    capped: tuple[str, ...]
    guard: str | None


def kelly_fraction(p_up: float, gain: float, loss: float) -> float:
    """Return the signed Kelly fraction: f* = p - (1 - p) / (G / L) long, its mirror short, else 0.

    With no downside mass (L = 0) the long limit is f* = p; with no upside mass the short one is
    -(1 - p).
    """
    if not (gain > 0.0) and not (loss > 0.0):
        return 0.0
    if not (loss > 0.0):
        return p_up
    if not (gain > 0.0):
        return -(1.0 - p_up)
    b = gain / loss
    f_long = p_up - (1.0 - p_up) / b
    if f_long > 0.0:
        return f_long
    f_short = (1.0 - p_up) - p_up * b
    if f_short > 0.0:
        return -f_short
    return 0.0


def vol_scale(cfg: SizingConfig, realized_vol: float | None) -> float:
    """Return target_vol / realized_vol capped at max_vol_scale (1 when vol targeting is off)."""
    if realized_vol is None:
        return 1.0
    if not (realized_vol > 0.0) or not math.isfinite(realized_vol):
        return cfg.max_vol_scale
    return min(cfg.target_vol / realized_vol, cfg.max_vol_scale)


def guard_for(cfg: SizingConfig, risk: RiskState, ts_ns: int, now_ns: int, warm: bool) -> str | None:
    """Return the guard that cuts the size to zero, if any (most severe first)."""
    if risk.intraday_drawdown >= cfg.max_intraday_drawdown:
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
    prob_up: float,
    gain: float,
    loss: float,
    expected_return: float,
    realized_vol: float | None,
    adv_notional: float | None,
    guard: str | None,
) -> SizeResult:
    """Size one position from its distribution summary (all returns as fractions)."""
    kelly = kelly_fraction(prob_up, gain, loss)
    kelly_frac = cfg.kelly_alpha * kelly
    scale = vol_scale(cfg, realized_vol)
    size = kelly_frac * scale if expected_return != 0.0 else 0.0
    capped: list[str] = []
    if abs(size) > cfg.max_nav_frac:
        size = math.copysign(cfg.max_nav_frac, size)
        capped.append("nav")
    if adv_notional is not None:
        adv_cap = cfg.max_adv_share * max(adv_notional, 0.0) / risk.nav
        if abs(size) > adv_cap:
            size = math.copysign(adv_cap, size)
            capped.append("adv")
    if guard is not None:
        size = 0.0
    size = size + 0.0  # normalise -0.0 so JSON and Rust agree
    return SizeResult(
        kelly=kelly,
        kelly_frac=kelly_frac,
        vol_scale=scale,
        size=size,
        notional=size * risk.nav,
        capped=tuple(capped),
        guard=guard,
    )
