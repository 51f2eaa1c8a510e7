"""Typed, strict parameters of the market simulator: the price dynamics and each vendor's faults.

Defaults give three vendors with distinct personalities: ``sim-a`` fast and clean, ``sim-b`` slow,
noisy, millisecond-stamped and without trade sides, ``sim-c`` fast but with its clock 250 ms ahead.
"""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import Field, field_validator

from core.config import Strict

SimTable = Literal["trades", "quotes", "options_chain", "sim_truth", "sim_events"]
ALL_TABLES: tuple[SimTable, ...] = ("trades", "quotes", "options_chain", "sim_truth", "sim_events")


class VendorConfig(Strict):
    """How one vendor observes the true market: latency, clock, noise and injected faults."""

    name: str = Field(min_length=1)
    latency_ms: float = Field(20.0, ge=0, description="median delivery latency (lognormal)")
    latency_sigma: float = Field(0.5, ge=0, description="lognormal shape of the latency")
    clock_offset_ms: float = Field(0.0, description="constant error of the vendor's clock")
    noise_bps: float = Field(0.5, ge=0, description="Gaussian price noise before tick rounding")
    ts_resolution_us: int = Field(1, ge=1, description="the vendor truncates its stamps to this")
    quote_fraction: float = Field(0.5, gt=0, le=1, description="share of true quote updates seen")
    reports_side: bool = True
    gaps_per_day: float = Field(1.0, ge=0, description="missing periods per full session")
    gap_mean_s: float = Field(60.0, gt=0)
    stales_per_day: float = Field(1.0, ge=0, description="periods repeating the last price")
    stale_mean_s: float = Field(120.0, gt=0)
    bad_print_rate: float = Field(1e-4, ge=0, le=0.05, description="share of trades mispriced by 2-10%")


DEFAULT_VENDORS = (
    VendorConfig(
        name="sim-a",
        latency_ms=15,
        latency_sigma=0.4,
        noise_bps=0.3,
        quote_fraction=0.6,
        gaps_per_day=1,
        gap_mean_s=60,
        stales_per_day=1,
        stale_mean_s=90,
        bad_print_rate=1e-4,
    ),
    VendorConfig(
        name="sim-b",
        latency_ms=60,
        latency_sigma=0.8,
        noise_bps=1.0,
        ts_resolution_us=1000,
        quote_fraction=0.3,
        reports_side=False,
        gaps_per_day=2,
        gap_mean_s=120,
        stales_per_day=2,
        stale_mean_s=120,
        bad_print_rate=3e-4,
    ),
    VendorConfig(
        name="sim-c",
        latency_ms=5,
        latency_sigma=0.3,
        clock_offset_ms=250,
        noise_bps=0.2,
        quote_fraction=0.8,
        gaps_per_day=0.5,
        gap_mean_s=300,
        stales_per_day=1,
        stale_mean_s=60,
        bad_print_rate=5e-5,
    ),
)


class Dynamics(Strict):
    """The true price process: regime-switching stochastic volatility, jumps and order-flow impact.

    ``informed_bias`` > 0 adds informed flow: a latent unit OU factor x (half-life ``informed_half_life_s``)
    per symbol tilts each fresh trade sign, P(+1) = (1 + b) / 2 with b = clip(informed_bias * x, -0.95, 0.95),
    so signed flow carries a slowly decaying drift through the impact of the trades.
    """

    annual_vol: float = Field(0.25, gt=0, description="long-run annualised volatility")
    regime_vol: tuple[float, ...] = Field((0.6, 1.0, 2.0), min_length=1, description="vol multiplier per regime")
    regime_minutes: float = Field(60.0, gt=0, description="expected stay in a regime")
    vol_of_vol: float = Field(0.3, ge=0, description="stdev of the log-vol OU within a regime")
    vol_reversion_minutes: float = Field(30.0, gt=0)
    jumps_per_day: float = Field(2.0, ge=0)
    jump_bps: float = Field(25.0, ge=0, description="stdev of a jump")
    impact_share: float = Field(0.3, ge=0, lt=1, description="share of return variance from signed flow")
    sign_persistence: float = Field(0.6, ge=0, lt=1, description="P(next trade repeats the sign)")
    informed_bias: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="stationary stdev of the informed order-flow bias: the latent tilt b of E[sign] of every "
        "fresh trade sign (0 = no informed flow, the default)",
    )
    informed_half_life_s: float = Field(
        120.0, gt=0, description="half-life of the informed bias (an OU process per symbol, reset each session)"
    )
    half_spread_bps: float = Field(1.0, gt=0)
    seasonality: float = Field(1.8, ge=0, lt=3, description="U-shape depth of intensity over the session")
    mean_size: float = Field(100.0, gt=0)
    rate: float = Field(0.04, description="risk-free rate for the option chain")

    @field_validator("regime_vol")
    @classmethod
    def _positive(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        if any(x <= 0 for x in v):
            raise ValueError("regime vol multipliers must be > 0")
        return v


class SimParams(Strict):
    """Everything that determines the simulated market (same params and seed => identical frames)."""

    symbols: list[str] = Field(default_factory=lambda: ["SIM1:SIM", "SIM2:SIM", "SIM3:SIM"], min_length=1)
    start: date = date(2026, 1, 5)
    n_days: int = Field(1, ge=1, le=3660)
    session: Literal["XNYS", "24/7"] = "XNYS"
    session_minutes: int | None = Field(None, ge=1, description="simulate only the first N minutes of each session")
    trades_per_day: int = Field(50_000, ge=1, description="expected true trades per full session")
    base_ms: int = Field(1000, ge=10, le=60_000, description="resolution of the true path")
    base_price: float = Field(100.0, gt=0)
    tick_size: float = Field(0.01, gt=0)
    seed: int = 7
    dynamics: Dynamics = Dynamics()
    vendors: list[VendorConfig] = Field(default_factory=lambda: list(DEFAULT_VENDORS), min_length=1)
    tables: list[SimTable] = Field(default_factory=lambda: list(ALL_TABLES), min_length=1)
    chunk_rows: int = Field(1_000_000, ge=1000, description="rows per chunk handed to the engine")

    @field_validator("symbols")
    @classmethod
    def _symbol_ids(cls, v: list[str]) -> list[str]:
        bad = [s for s in v if ":" not in s]
        if bad or len(set(v)) != len(v):
            raise ValueError(f"symbols must be unique symbol_ids like 'SIM1:SIM'; got {v}")
        return v

    @field_validator("vendors")
    @classmethod
    def _vendor_names(cls, v: list[VendorConfig]) -> list[VendorConfig]:
        names = [x.name for x in v]
        if len(set(names)) != len(names):
            raise ValueError(f"vendor names must be unique; got {names}")
        return v
