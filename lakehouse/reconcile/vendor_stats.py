"""Vendor latency, uptime and reliability estimated from history; the consensus weights.

Per (source, symbol) and window, from the consensus observations:
- ``uptime``: share of the symbol's consensus slots where the source delivered a fresh bar;
- ``outlier_rate``: share of its delivered bars flagged as outliers;
- ``reliability``: Laplace-smoothed share of delivered bars that were NOT outliers;
- ``latency_ms``: the median observed delay (arrival - event time) when the feed records arrival
  times; otherwise the lead-lag of its returns against the other vendors, estimated on a fine
  grid (``estimate_latency``) and expressed relative to the fastest vendor (0 ms).

Weights for a window come from stats whose ``known_at`` is at or before the window start, so a
re-run of a window always sees the same weights (point in time, idempotent).
"""

from __future__ import annotations

import polars as pl
from polars._typing import SchemaDict

from lakehouse.reconcile.clock_offset import OffsetConfig, detect_offsets
from lakehouse.schema import PL_TS as TS

STATS_COLUMNS = [
    "source",
    "symbol_id",
    "window_start",
    "window_end",
    "latency_ms",
    "uptime",
    "reliability",
    "outlier_rate",
    "n_obs",
    "known_at",
]
LATENCY_SCHEMA: SchemaDict = {"source": pl.String, "symbol_id": pl.String, "latency_ms": pl.Float64}
LATENCY_SPAN_NS = 2 * 3_600_000_000_000  # ticks of each symbol's first two hours suffice for the lead-lag


def estimate_latency(
    trades: pl.DataFrame, step_ns: int = 50_000_000, max_lag_ns: int = 1_000_000_000, span_ns: int = LATENCY_SPAN_NS
) -> pl.DataFrame:
    """Return each source's latency (ms) relative to the fastest, from tick-level lead-lag.

    Ticks are reduced to the last price per ``step_ns`` and cross-correlated with the other
    sources' over lags up to ``max_lag_ns``; a source that trails the reference by L gets L.
    Only the first ``span_ns`` of each symbol's ticks are used (enough prints, bounded cost).
    """
    if trades.height == 0:
        return pl.DataFrame(schema=LATENCY_SCHEMA)
    first = pl.col("ts").min().over("symbol_id")
    trades = trades.filter(pl.col("ts") < first + pl.duration(microseconds=span_ns // 1000))
    grid = (
        trades.with_columns((pl.col("ts").cast(TS).dt.epoch("ns") // step_ns * step_ns).alias("_g"))
        .group_by("source", "symbol_id", "_g")
        .agg(pl.col("price").last().alias("close"))
        .select("source", "symbol_id", pl.col("_g").cast(TS).alias("ts"), "close")
    )
    # Sparse tick grids: the lead-lag peak is tiny but consistent, so no noise ceiling here.
    cfg = OffsetConfig(step_ns=step_ns, max_lag_ns=max_lag_ns, min_corr=0.003, zero_margin=0.003, noise_z=0.0)
    offsets = detect_offsets(grid, None, None, cfg)
    sources = grid.select("source", "symbol_id").unique()
    lat = sources.join(
        offsets.select("source", "symbol_id", "offset_ns"), on=["source", "symbol_id"], how="left"
    ).with_columns((-pl.col("offset_ns").fill_null(0) / 1e6).alias("latency_ms"))
    return (
        lat.with_columns((pl.col("latency_ms") - pl.col("latency_ms").min().over("symbol_id")).alias("latency_ms"))
        .select(LATENCY_SCHEMA.keys())
        .sort("symbol_id", "source")
    )


def estimate_vendor_stats(
    observations: pl.DataFrame, window_start, window_end, known_at, latency: pl.DataFrame | None = None
) -> pl.DataFrame:
    """Return ``silver.vendor_stats`` rows for one window from consensus observations."""
    slots = observations.group_by("symbol_id").agg(pl.struct("tf", "ts").n_unique().alias("_slots"))
    delivered = pl.col("delivered")
    stats = (
        observations.group_by("source", "symbol_id")
        .agg(
            delivered.sum().cast(pl.Int64).alias("n_obs"),
            (delivered & pl.col("fresh")).sum().alias("_fresh"),
            (delivered & pl.col("outlier")).sum().alias("_out"),
            pl.col("lat_obs_ms").drop_nulls().median().alias("_lat_obs")
            if "lat_obs_ms" in observations.columns
            else pl.lit(None, pl.Float64).alias("_lat_obs"),
        )
        .join(slots, on="symbol_id")
    )
    if latency is None or latency.height == 0:
        latency = pl.DataFrame(schema=LATENCY_SCHEMA)
    stats = stats.join(latency.cast(pl.Schema(LATENCY_SCHEMA)), on=["source", "symbol_id"], how="left")
    return stats.select(
        "source",
        "symbol_id",
        pl.lit(window_start).cast(TS).alias("window_start"),
        pl.lit(window_end).cast(TS).alias("window_end"),
        pl.coalesce("_lat_obs", "latency_ms", pl.lit(0.0)).clip(0.0).alias("latency_ms"),
        (pl.col("_fresh") / pl.col("_slots")).clip(0.0, 1.0).alias("uptime"),
        ((pl.col("n_obs") - pl.col("_out") + 1) / (pl.col("n_obs") + 2)).alias("reliability"),
        pl.when(pl.col("n_obs") > 0).then(pl.col("_out") / pl.col("n_obs")).otherwise(0.0).alias("outlier_rate"),
        "n_obs",
        pl.lit(known_at).cast(TS).alias("known_at"),
    ).sort("symbol_id", "source")


def weights_from_stats(stats: pl.DataFrame, as_of, eps_ms: float = 1.0) -> pl.DataFrame:
    """Return (source, symbol_id, w, latency_ms) from the latest stats known at ``as_of``.

    ``w = uptime * reliability / (latency_ms + eps_ms)`` (seed MPS section 5).
    """
    known = stats.filter(pl.col("known_at") <= pl.lit(as_of).cast(TS))
    latest = known.sort("window_end").group_by("source", "symbol_id").last()
    return latest.select(
        "source",
        "symbol_id",
        (pl.col("uptime") * pl.col("reliability") / (pl.col("latency_ms") + eps_ms)).alias("w"),
        "latency_ms",
    ).sort("symbol_id", "source")
