"""LEAN option-chain universes (option/usa/universes and indexoption/usa/universes) -> bronze.options_chain.

A universe file ``<ticker>/<YYYYMMDD>.csv`` has a ``#expiry,strike,right,open,high,low,close,volume,
open_interest,implied_volatility,delta,gamma,vega,theta,rho`` header; its first data row is usually
the underlying (empty expiry, strike and right): that summary row is not an option and is skipped
(it is not counted as read). The data describe the universe date's session (SPY 2024-01-02's
underlying row is that day's OHLC), so rows are stamped at that date's XNYS close in UTC.

Mapping: ``last`` = the contract's close; bid and ask are not delivered (null); open/high/low are
dropped (bronze.options_chain has no columns for them); ``iv`` = implied_volatility.
"""

from __future__ import annotations

import polars as pl

from lakehouse.ingest import Chunk
from lakehouse.sources.lean_parse import REASON, Field, parse_fields, reject, split_lines, split_rejected
from lakehouse.sources.lean_paths import LeanFile
from lakehouse.sources.lean_time import NS, session_close
from lakehouse.tables import BRONZE_OPTIONS_CHAIN

GREEKS = ("delta", "gamma", "vega", "theta", "rho")
LAYOUT = (
    Field("expiry", "date", required=False),
    Field("strike", required=False),
    Field("right", "str", required=False),
    Field("open", required=False),
    Field("high", required=False),
    Field("low", required=False),
    Field("close", required=False),
    Field("volume", required=False),
    Field("open_interest", required=False),
    Field("implied_volatility", required=False),
    *(Field(g, required=False) for g in GREEKS),
)


def universe_chunk(f: LeanFile, data: bytes) -> Chunk:
    """Parse one option universe file into a bronze.options_chain chunk."""
    df = parse_fields(split_lines(data, skip_comment=True), LAYOUT)
    underlying_row = pl.col("expiry").is_null() & pl.col("strike").is_null() & pl.col("right").is_null()
    df = df.filter(~(underlying_row & pl.col(REASON).is_null()))
    for name in ("expiry", "strike", "right"):
        df = reject(df, pl.col(name).is_null(), f"{name}: missing")
    df = reject(df, ~pl.col("right").is_in(["C", "P"]), pl.format("right: expected C or P ({})", pl.col("right")))
    good, rejected = split_rejected(df)
    stamp = session_close(good.with_columns(pl.lit(f.day).cast(pl.Datetime("ns")).alias("_d")), "_d")
    rows = good.with_columns(stamp.cast(NS).alias("ts")).select(
        "ts",
        pl.lit(f.symbol_id).alias("underlying"),
        "expiry",
        "strike",
        "right",
        pl.lit(None, pl.Float64).alias("bid"),
        pl.lit(None, pl.Float64).alias("ask"),
        pl.col("close").alias("last"),
        "volume",
        "open_interest",
        pl.col("implied_volatility").alias("iv"),
        *GREEKS,
        "_row",
        "_raw",
    )
    return Chunk(BRONZE_OPTIONS_CHAIN, rows, rejected)
