"""Cross-sectional features (``xs_v1``): momentum and low-volatility ranks within the universe.

At each bar end ``ts`` every symbol with a value is ranked against the others (percentile rank in
[0, 1], ties averaged; null when fewer than ``MIN_NAMES`` symbols have a value). Inputs are each
symbol's point-in-time adjusted returns (``feature_store.pit_prices``). A rank depends on every
symbol's bar at ts, so a row's ``known_at`` is the latest ``known_at`` across the universe at ts.
"""

from __future__ import annotations

import polars as pl

from feature_store.bars.compute import prepare
from feature_store.pit_prices import pit_features
from feature_store.registry import FeatureDef, FeatureSet, register

MIN_NAMES = 3
MOMENTUM = (21, 63, 126)  # 1, 3, 6 months of daily bars
VOL_WINDOW = 63

XS_V1 = register(
    FeatureSet(
        "xs_v1",
        "1d",
        (
            *(
                FeatureDef(
                    f"mom_rank_{n}",
                    params={"n": n, "min_names": MIN_NAMES},
                    window=n + 1,
                    description=f"percentile rank of the {n}-bar log return across the universe",
                )
                for n in MOMENTUM
            ),
            FeatureDef(
                "lowvol_rank_63",
                params={"n": VOL_WINDOW, "min_names": MIN_NAMES},
                window=VOL_WINDOW + 1,
                description="1 - percentile rank of 63-bar realised vol (1 = calmest name)",
            ),
        ),
        "cross-sectional ranks within the universe",
    )
)


def _raw_signals(bars: pl.DataFrame) -> pl.DataFrame:
    """Per-symbol momentum returns and realised vol (the values ranked)."""
    b = prepare(bars)
    lc = pl.col("close").log()
    return b.select(
        "symbol_id",
        "ts",
        pl.max_horizontal("known_at", "ts").cum_max().over("symbol_id").alias("known_at"),
        *((lc - lc.shift(n)).over("symbol_id").alias(f"_mom_{n}") for n in MOMENTUM),
        (lc.diff() ** 2).rolling_mean(VOL_WINDOW).sqrt().over("symbol_id").alias("_vol"),
    )


def _pct_rank(column: str) -> pl.Expr:
    c = pl.col(column)
    n = c.count().over("ts")
    rank = (c.rank("average").over("ts") - 1) / (n - 1)
    return pl.when((n >= MIN_NAMES) & c.is_not_null()).then(rank)


def rank_frame(signals: pl.DataFrame) -> pl.DataFrame:
    """Rank point-in-time signals across symbols at each ts: ``xs_v1`` rows."""
    return signals.select(
        "symbol_id",
        pl.lit(XS_V1.tf).alias("tf"),
        "ts",
        pl.col("known_at").max().over("ts").alias("known_at"),
        pl.lit(XS_V1.name).alias("feature_set"),
        *(_pct_rank(f"_mom_{n}").cast(pl.Float64).alias(f"mom_rank_{n}") for n in MOMENTUM),
        (1.0 - _pct_rank("_vol")).cast(pl.Float64).alias("lowvol_rank_63"),
    ).sort("symbol_id", "ts")


def cross_section_features(
    bars: pl.DataFrame, actions: pl.DataFrame | None = None, tz: str = "America/New_York"
) -> pl.DataFrame:
    """``xs_v1`` rows for raw daily bars of the whole universe (corporate actions applied point in time)."""
    return rank_frame(pit_features(bars, actions, _raw_signals, tz))
