"""Consensus bars across vendors (seed MPS section 5): weighted median, MAD outliers, staleness.

For every bar slot (symbol, tf, ts) at least one source delivered, each source contributes its bar
at that slot, or its last bar within ``max_delay_bars`` (carried flat, volume 0). A contribution
whose age ``ts - last_ts`` exceeds theta(tf) = ``stale_after`` bar lengths (24 h for "1d") is
stale; stale ones are used only when no source is fresh, and the bar is then flagged stale
(degraded to delayed data).

Per price field (open, high, low, close) the consensus is the weighted median of the
contributions, with weights ``w_i`` from ``silver.vendor_stats`` (uptime * reliability /
(latency + eps)). A contribution is an outlier when ``|p_i - median| > k * sigma`` with
``sigma = max(1.4826 * MAD, typical cross-vendor deviation in the window, floor)``; such a
deviating field is left out of that field's median. Whether the deviation makes the source's bar
an OUTLIER (bad data: not "used" for volume/VWAP/trade count and the quality struct, and counted
against the vendor's reliability) depends on what is known of its prints:
- bars built from ticks screened for isolated prints (``isolated_prints``): only when a deviating
  field equals an isolated print of that bar (a bad print). Otherwise the vendor was late, e.g. a
  frozen feed that thawed inside the minute: its prints were real but old, so the field is left
  out, the bar stays used, and the observation is marked ``deviant`` only;
- vendor bars (no ticks to look at): any deviating field makes the bar an outlier.

``known_at`` of a consensus bar is the latest moment any used source's data could be in hand:
per used source its bar's observed ``arrival`` when the feed records one, else the bar end plus
the vendor's estimated latency; never earlier than the bar end. ``quality.lat_ms`` is
``known_at - ts`` in milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl
from polars._typing import SchemaDict

from lakehouse.reconcile.sessions import tf_ns
from lakehouse.reconcile.weighted_median import weighted_median
from lakehouse.schema import DAY_NS
from lakehouse.schema import PL_TS as TS

FIELDS = ("open", "high", "low", "close")
SLOT = ["symbol_id", "tf", "ts"]
WEIGHT_SCHEMA: SchemaDict = {"source": pl.String, "symbol_id": pl.String, "w": pl.Float64, "latency_ms": pl.Float64}


@dataclass(frozen=True)
class ConsensusConfig:
    """Knobs of the consensus; defaults suit minute-to-daily bars from a handful of vendors."""

    k: float = 6.0  # outlier threshold, in robust sigmas
    eps_ms: float = 1.0  # keeps 1 / (latency + eps) finite for zero-latency vendors
    stale_after: float = 1.0  # theta(tf) in bar lengths
    max_delay_bars: int = 60  # how long a silent source's last bar is carried as delayed data
    floor_bps: float = 0.05  # sigma never falls below this fraction of the price (1e-4 units)
    frozen_trades: int = 5  # a bar of >= this many prints at one price while others move is stale
    isolated_k: float = 15.0  # an isolated print jumps > this many typical tick moves away and back
    isolated_floor_bps: float = 20.0  # ... and by more than this
    max_share: float = 0.45  # cap on one source's share in the first-pass (outlier) median: a
    # dominant vendor must not define "normal", or its faults pass and
    # the honest vendors get flagged; the final median keeps full weights


@dataclass(frozen=True)
class Consensus:
    """Consensus bars (silver.bars columns) and each source's contribution per slot."""

    bars: pl.DataFrame
    observations: pl.DataFrame


def _bar_len(tf: str) -> int:
    return tf_ns(tf) or DAY_NS


def candidates(bars: pl.DataFrame, cfg: ConsensusConfig) -> pl.DataFrame:
    """Return each source's contribution per slot, with its age and freshness."""
    keys = ["symbol_id", "tf"]
    out = []
    for (tf,), part in bars.partition_by("tf", as_dict=True).items():
        length = _bar_len(tf)
        slots = part.select(*SLOT).unique()
        grid = slots.join(part.select(*keys, "source").unique(), on=keys).sort("ts")
        src = part.with_columns(pl.col("ts").alias("bar_ts")).sort("ts")
        filled = grid.join_asof(
            src.drop("tf"),
            on="ts",
            by=["symbol_id", "source"],
            strategy="backward",
            tolerance=f"{length * cfg.max_delay_bars}ns",
            check_sortedness=False,
        )
        out.append(
            filled.filter(pl.col("bar_ts").is_not_null()).with_columns(
                (pl.col("ts").dt.epoch("ns") - pl.col("last_ts").dt.epoch("ns")).alias("age_ns"),
                pl.lit(int(length * cfg.stale_after)).alias("_theta"),
            )
        )
    if not out:
        return pl.DataFrame()
    frame = pl.concat(out, how="vertical_relaxed")
    carried = pl.col("bar_ts") != pl.col("ts")
    flat = [pl.when(carried).then(pl.col("close")).otherwise(pl.col(f)).alias(f) for f in FIELDS]
    frame = frame.with_columns(
        *flat,
        pl.when(carried).then(0.0).otherwise(pl.col("volume")).alias("volume"),
        pl.when(carried).then(None).otherwise(pl.col("vwap")).alias("vwap"),
        pl.when(carried).then(0).otherwise(pl.col("n_trades")).alias("n_trades"),
        pl.when(carried).then(None).otherwise(pl.col("arrival")).alias("arrival"),
        (pl.col("age_ns") <= pl.col("_theta")).alias("fresh"),
    )
    # a frozen feed keeps printing its last price: flat bar of many prints while another source moves
    flat_many = (pl.col("high") == pl.col("low")) & (pl.col("n_trades").fill_null(0) >= cfg.frozen_trades)
    moving = (pl.col("fresh") & (pl.col("high") > pl.col("low"))).any().over(SLOT)
    frame = frame.with_columns((pl.col("fresh") & ~(flat_many & moving)).alias("fresh"))
    any_fresh = pl.col("fresh").any().over(SLOT)
    return frame.with_columns((~any_fresh).alias("slot_stale")).filter(pl.col("fresh") | pl.col("slot_stale"))


def attach_weights(cand: pl.DataFrame, weights: pl.DataFrame | None, cfg: ConsensusConfig) -> pl.DataFrame:
    """Join each source's weight and latency; sources without history get the symbol's median weight."""
    if weights is None or weights.height == 0:
        weights = pl.DataFrame(schema=WEIGHT_SCHEMA)
    joined = cand.join(
        weights.select(WEIGHT_SCHEMA.keys()).cast(pl.Schema(WEIGHT_SCHEMA)), on=["source", "symbol_id"], how="left"
    )
    return joined.with_columns(
        pl.col("w").fill_null(pl.col("w").median().over("symbol_id")).fill_null(1.0).clip(1e-9),
        pl.col("latency_ms").fill_null(pl.col("latency_ms").median().over("symbol_id")).fill_null(0.0),
    )


def flag_outliers(
    cand: pl.DataFrame, cfg: ConsensusConfig, isolated: pl.DataFrame | None = None, screened: pl.DataFrame | None = None
) -> pl.DataFrame:
    """Return the long (slot, source, field) frame with the first-pass median, ``deviant`` and ``outlier``.

    ``screened`` lists the (source, symbol_id) whose bars come from ticks screened for isolated
    prints, ``isolated`` those prints per bar (``PrintScreen.bars``); see the module docstring. While
    isolated prints carry at most half the slot's weight, they barely weigh in the first-pass
    median and are left out of the MAD and of the typical deviation, so a bad print is caught even
    when only two vendors deliver the slot; a spike that most vendors printed (a real one) keeps
    its weight and can stay.
    """
    long = cand.unpivot(
        index=[*SLOT, "source", "bar_ts", "w"], on=list(FIELDS), variable_name="field", value_name="value"
    )
    long = _mark_isolated(long, isolated, screened)
    by = [*SLOT, "field"]
    share = (pl.col("w") * pl.col("_iso")).sum().over(by) / pl.col("w").sum().over(by)
    long = long.with_columns((pl.col("_iso") & (share <= 0.5 + 1e-12)).alias("_doubt"))
    others = pl.col("w").sum().over(by) - pl.col("w")
    capped = pl.when(others > 0).then(pl.min_horizontal(pl.col("w"), cfg.max_share / (1 - cfg.max_share) * others))
    first = (
        long.with_columns(capped.otherwise(pl.col("w")).alias("_wc"))
        .with_columns(pl.when(pl.col("_doubt")).then(pl.col("_wc") * 1e-9).otherwise(pl.col("_wc")).alias("_w1"))
        .drop("_wc")
    )
    med = weighted_median(first, by, weight="_w1", alias="med0")
    long = long.join(med, on=by).with_columns((pl.col("value") - pl.col("med0")).abs().alias("dev"))
    rel = pl.col("dev") / pl.col("med0")
    typical = (
        long.filter(pl.col("dev") > 0, ~pl.col("_doubt"))
        .group_by("symbol_id", "tf", "field")
        .agg(rel.median().alias("typical"))
    )
    mad = pl.col("dev").filter(~pl.col("_doubt")).median().over(by)
    long = long.join(typical, on=["symbol_id", "tf", "field"], how="left").with_columns(
        pl.max_horizontal(
            1.4826 * pl.coalesce(mad, pl.col("dev").median().over(by)),
            pl.col("typical").fill_null(0.0) * pl.col("med0"),
            cfg.floor_bps * 1e-4 * pl.col("med0"),
        ).alias("sigma")
    )
    deviant = pl.col("dev") > cfg.k * pl.col("sigma")
    return long.with_columns(
        deviant.alias("deviant"), (deviant & (~pl.col("_screened") | pl.col("_iso"))).alias("outlier")
    ).drop("_iso", "_doubt", "_screened")


ISO_FIELDS = ("iso_open", "iso_high", "iso_low", "iso_close")


def _mark_isolated(long: pl.DataFrame, isolated: pl.DataFrame | None, screened: pl.DataFrame | None) -> pl.DataFrame:
    """Add ``_screened`` (the source's prints were screened) and ``_iso`` (the value is an isolated print)."""
    if screened is None or screened.height == 0:
        return long.with_columns(pl.lit(False).alias("_screened"), pl.lit(False).alias("_iso"))
    marks = screened.select("source", "symbol_id").unique().with_columns(pl.lit(True).alias("_screened"))
    long = long.join(marks, on=["source", "symbol_id"], how="left").with_columns(pl.col("_screened").fill_null(False))
    if isolated is None or isolated.height == 0:
        return long.with_columns(pl.lit(False).alias("_iso"))
    iso = isolated.select("source", "symbol_id", "tf", pl.col("ts").alias("bar_ts"), *ISO_FIELDS)
    long = long.join(iso, on=["source", "symbol_id", "tf", "bar_ts"], how="left")
    hit = pl.any_horizontal([(pl.col("value") - pl.col(c)).abs() <= 1e-9 * pl.col("value").abs() for c in ISO_FIELDS])
    return long.with_columns((pl.col("_screened") & hit.fill_null(False)).alias("_iso")).drop(*ISO_FIELDS)


def consensus(
    bars: pl.DataFrame,
    weights: pl.DataFrame | None = None,
    cfg: ConsensusConfig = ConsensusConfig(),
    isolated: pl.DataFrame | None = None,
    screened: pl.DataFrame | None = None,
) -> Consensus:
    """Reconcile per-source bars (``bars.BAR_COLUMNS``) into one consensus bar per slot.

    ``isolated`` and ``screened`` (from ``isolated_prints.PrintScreen``) tell bad prints from late
    prints in tick-built bars; without them every deviating bar is an outlier.
    """
    cand = candidates(bars, cfg) if bars.height else pl.DataFrame()
    if cand.height == 0:
        return Consensus(_empty_bars(), pl.DataFrame())
    cand = attach_weights(cand, weights, cfg)
    long = flag_outliers(cand, cfg, isolated, screened)
    prices = weighted_median(long.filter(~pl.col("deviant")), [*SLOT, "field"]).pivot(
        on="field", index=SLOT, values="value"
    )
    src_out = long.group_by(*SLOT, "source").agg(
        pl.col("outlier").any(), pl.col("deviant").any(), (pl.col("dev") / pl.col("med0")).max().alias("dev_rel")
    )
    obs = cand.join(src_out, on=[*SLOT, "source"]).with_columns((~pl.col("outlier")).alias("used"))
    used = obs.filter(pl.col("used")).with_columns(
        pl.coalesce(
            "arrival", pl.col("ts") + pl.duration(microseconds=(pl.col("latency_ms") * 1000).round().cast(pl.Int64))
        ).alias("_known")
    )
    side = [weighted_median(used, SLOT, c) for c in ("volume", "vwap", "n_trades")]
    quality = (
        obs.group_by(SLOT)
        .agg(
            pl.col("slot_stale").first().alias("stale"),
            pl.col("outlier").mean().alias("outlier_frac"),
            pl.col("source").filter(pl.col("outlier")).sort().alias("outliers"),
        )
        .join(
            used.group_by(SLOT).agg(
                pl.len().cast(pl.Int64).alias("n_src"),
                pl.col("source").sort().alias("sources"),
                pl.col("_known").max().alias("_known"),
            ),
            on=SLOT,
        )
    )
    out = prices.join(quality, on=SLOT)
    for s in side:
        out = out.join(s, on=SLOT, how="left")
    out = (
        out.with_columns(
            pl.max_horizontal("high", "open", "close").alias("high"),
            pl.min_horizontal("low", "open", "close").alias("low"),
            pl.max_horizontal(pl.col("_known").cast(TS), "ts").alias("known_at"),
            pl.lit("raw").alias("adjustment"),
            pl.col("volume").fill_null(0.0),
        )
        .with_columns(
            ((pl.col("known_at").dt.epoch("ns") - pl.col("ts").dt.epoch("ns")) / 1e6).alias("lat_ms"),
        )
        .with_columns(
            pl.struct("stale", "outlier_frac", "n_src", "lat_ms", "sources", "outliers").alias("quality"),
        )
    )
    observations = obs.select(
        *SLOT,
        "source",
        "fresh",
        "outlier",
        "deviant",
        "used",
        "dev_rel",
        "age_ns",
        (pl.col("bar_ts") == pl.col("ts")).alias("delivered"),
        "close",
        "w",
        ((pl.col("arrival").dt.epoch("ns") - pl.col("ts").dt.epoch("ns")) / 1e6).alias("lat_obs_ms"),
    )
    return Consensus(out.select(_BAR_COLUMNS).sort(SLOT), observations.sort(*SLOT, "source"))


_BAR_COLUMNS = [
    "symbol_id",
    "tf",
    "ts",
    "adjustment",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "vwap",
    "n_trades",
    "quality",
    "known_at",
]


def _empty_bars() -> pl.DataFrame:
    from lakehouse.tables import SILVER_BARS

    return pl.DataFrame(SILVER_BARS.schema.empty_table())
