"""Thresholds of the quality gate, typed and strict (a typo in YAML is an error, not a default)."""

from __future__ import annotations

from pydantic import Field

from core.config import Strict


class JumpRule(Strict):
    """Bound a bar's largest log move from the previous close by a multiple of recent volatility.

    Volatility is a robust scale of the previous ``window`` close-to-close log returns of the same
    series (median absolute return / 0.6745), floored at ``min_vol`` so flat stretches (pre-market
    minutes) do not turn one tick into an outlier. A series too short for a rolling estimate falls
    back to its whole-batch robust scale.
    """

    window: int = Field(50, ge=2)
    min_periods: int = Field(10, ge=2)
    max_z: float = Field(40.0, gt=0)
    min_vol: float = Field(5e-4, gt=0, description="floor of the per-bar volatility (log units)")


class VolumeRule(Strict):
    """Bound a bar's volume by a multiple of a rolling quantile of its series' volume, and absolutely.

    Daily bars compare with the median of the previous ``window`` bars. Intraday bars use a high
    quantile over a whole extended-hours day, so the opening and closing auctions are measured
    against regular-session minutes rather than against thin pre-market ones.
    """

    window: int = Field(20, ge=2)
    quantile: float = Field(0.5, gt=0, le=1)
    min_periods: int = Field(5, ge=1)
    max_ratio: float = Field(50.0, gt=0)
    max_volume: float | None = Field(1e11, gt=0, description="absolute cap per bar (units of volume)")


class QualityRules(Strict):
    """Per-timeframe rules; ``by_tf`` overrides ``default`` for intraday bars (auctions, pre-market)."""

    jump: JumpRule = JumpRule()
    volume: VolumeRule = VolumeRule()
    intraday_volume: VolumeRule = VolumeRule(window=960, quantile=0.9, min_periods=30, max_ratio=200.0)
    session_tz: str = Field("America/New_York", description="timezone that dates a bar for split matching")

    def volume_rule(self, tf: str) -> VolumeRule:
        """Return the volume rule for a timeframe (daily and longer use ``volume``)."""
        return self.volume if tf.endswith(("d", "w", "mo")) else self.intraday_volume


DEFAULT_RULES = QualityRules()
