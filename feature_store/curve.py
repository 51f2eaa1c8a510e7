"""Futures curve features (``curve_v1``): F1-F2 slope, annualised carry and butterfly per root and bar.

At each bar end ts, a root's curve is the contracts not yet expired (expiry after ts's date) that
have a bar at ts, ordered by expiry: F1 (the contract in force), F2, F3. With T the years to expiry:
- ``curve_slope`` = log(F2 / F1);
- ``curve_carry`` = -log(F2 / F1) / (T2 - T1), the annualised roll yield of holding F1 (backwardation > 0);
- ``curve_butterfly`` = log F1 - 2 log F2 + log F3 (curvature);
- ``curve_days_f1`` = calendar days to F1's expiry.
Only bars at ts are used, so a value never depends on a later bar; ``known_at`` is the latest
``known_at`` of the contract bars used. Inputs: bronze/silver contract bars (``symbol_id`` is the
contract) and bronze.futures_contracts (root, contract, expiry).
"""

from __future__ import annotations

import polars as pl

from feature_store.registry import FeatureDef, FeatureSet, register
from lakehouse.corporate_actions import TS_NS

CONTRACTS = "bronze.futures_contracts"


def _c(name: str, description: str) -> FeatureDef:
    return FeatureDef(name, input_table="bronze.bars", input_columns=("close",), window=1, description=description)


CURVE_V1 = register(
    FeatureSet(
        "curve_v1",
        "1d",
        (
            _c("curve_slope", "log(F2 / F1) of the contracts in force"),
            _c("curve_carry", "-log(F2 / F1) / (T2 - T1): annualised roll yield"),
            _c("curve_butterfly", "log F1 - 2 log F2 + log F3"),
            _c("curve_days_f1", "calendar days to the expiry of F1"),
        ),
        "futures curve features per root",
    )
)


def curve_features(bars: pl.DataFrame, contracts: pl.DataFrame, exchange: str | None = None) -> pl.DataFrame:
    """``curve_v1`` rows per (root symbol, ts); the root's symbol_id is ``<root>:<exchange>``.

    ``bars``: symbol_id (contract id), ts, close, known_at; one timeframe. ``exchange`` defaults to
    the suffix of the contract ids (``ESZ13:CME`` -> ``ES:CME``, the continuous series' id).
    """
    exch = pl.lit(f":{exchange}") if exchange else pl.lit(":") + pl.col("contract").str.split(":").list.last()
    defs = contracts.select(pl.col("root") + exch, "contract", pl.col("expiry").cast(pl.Date)).unique("contract")
    b = bars.select(
        pl.col("symbol_id").alias("contract"), pl.col("ts").cast(TS_NS), "close", pl.col("known_at").cast(TS_NS)
    )
    j = b.join(defs, on="contract").filter(pl.col("expiry") > pl.col("ts").dt.date())
    ranked = j.sort("root", "ts", "expiry").with_columns(pl.int_range(pl.len()).over("root", "ts").alias("k"))
    days = (pl.col("expiry") - pl.col("ts").dt.date()).dt.total_days().cast(pl.Float64)
    legs = ranked.filter(pl.col("k") < 3).with_columns(days.alias("days"))
    wide = legs.group_by("root", "ts").agg(
        *(pl.col("close").filter(pl.col("k") == i).first().log().alias(f"lf{i + 1}") for i in range(3)),
        *(pl.col("days").filter(pl.col("k") == i).first().alias(f"d{i + 1}") for i in range(2)),
        pl.col("known_at").max(),
    )
    slope = pl.col("lf2") - pl.col("lf1")
    return wide.select(
        pl.col("root").alias("symbol_id"),
        pl.lit(CURVE_V1.tf).alias("tf"),
        "ts",
        pl.max_horizontal("known_at", "ts").alias("known_at"),
        pl.lit(CURVE_V1.name).alias("feature_set"),
        slope.alias("curve_slope"),
        pl.when(pl.col("d2") > pl.col("d1"))
        .then(-slope / ((pl.col("d2") - pl.col("d1")) / 365.25))
        .alias("curve_carry"),
        (pl.col("lf1") - 2 * pl.col("lf2") + pl.col("lf3")).alias("curve_butterfly"),
        pl.col("d1").alias("curve_days_f1"),
    ).sort("symbol_id", "ts")
