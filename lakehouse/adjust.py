"""Split- and dividend-adjusted bars from raw bars, point in time.

A bar is adjusted by every action whose ex-date is after the bar's trading date (in the exchange
time zone; bars are stamped at their END, so a bar ending at midnight belongs to the day before).
Factors: a split of ratio R multiplies earlier prices by 1/R and volumes by R; a dividend D
multiplies earlier prices by 1 - D / C, where C is the raw close of the last bar at or before the
ex-date's midnight (the standard CRSP/Yahoo back-adjustment; LEAN's factor files use the same
formula with the official close). ``as_of`` keeps only actions with ``known_at <= as_of``; an
adjusted bar's ``known_at`` is the later of the raw bar's and of the latest action applied to it,
so the stored row never claims to be known before the action that shaped it.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import polars as pl

from lakehouse.corporate_actions import TS_NS, known_actions

PRICE_COLUMNS = ("open", "high", "low", "close")


def bar_trade_date(tz: str) -> pl.Expr:
    """The exchange-local trading date of a bar stamped at its END."""
    return (pl.col("ts") - pl.duration(nanoseconds=1)).dt.convert_time_zone(tz).dt.date()


def reference_closes(actions: pl.DataFrame, bars: pl.DataFrame, tz: str) -> pl.DataFrame:
    """Attach ``ref_close``: the raw close of the last bar at or before each ex-date's local midnight."""
    cut = actions.with_columns(
        pl.col("ex_date")
        .cast(pl.Datetime("ns"))
        .dt.replace_time_zone(tz)
        .dt.convert_time_zone("UTC")
        .cast(TS_NS)
        .alias("_cut")
    ).sort("_cut")
    src = bars.select("symbol_id", pl.col("ts").cast(TS_NS).alias("_bar_ts"), pl.col("close").alias("ref_close")).sort(
        "_bar_ts"
    )
    return cut.join_asof(
        src, left_on="_cut", right_on="_bar_ts", by="symbol_id", strategy="backward", check_sortedness=False
    ).drop("_cut", "_bar_ts")


def event_factors(actions: pl.DataFrame, bars: pl.DataFrame, tz: str) -> pl.DataFrame:
    """Per action: ``price_mult`` and ``volume_mult`` for bars before its ex-date."""
    a = reference_closes(actions.filter(pl.col("kind").is_in(["split", "dividend"])), bars, tz)
    return a.with_columns(
        pl.when(pl.col("kind") == "split")
        .then(1.0 / pl.col("ratio"))
        .otherwise(
            pl.when(pl.col("ref_close").is_not_null() & (pl.col("ref_close") > pl.col("amount")))
            .then(1.0 - pl.col("amount") / pl.col("ref_close"))
            .otherwise(1.0)
        )
        .alias("price_mult"),
        pl.when(pl.col("kind") == "split").then(pl.col("ratio")).otherwise(1.0).alias("volume_mult"),
    )


def cumulative_factors(factors: pl.DataFrame) -> pl.DataFrame:
    """Per (symbol, ex_date): products of all factors with ex-date >= it, and the latest known_at among them."""
    per_day = factors.group_by("symbol_id", "ex_date").agg(
        pl.col("price_mult").product(), pl.col("volume_mult").product(), pl.col("known_at").max()
    )
    return (
        per_day.sort("symbol_id", pl.col("ex_date"), descending=[False, True])
        .with_columns(
            pl.col("price_mult").cum_prod().over("symbol_id").alias("cum_price"),
            pl.col("volume_mult").cum_prod().over("symbol_id").alias("cum_volume"),
            pl.col("known_at").cum_max().over("symbol_id").alias("cum_known_at"),
        )
        .select("symbol_id", "ex_date", "cum_price", "cum_volume", "cum_known_at")
    )


def with_factors(
    bars: pl.DataFrame,
    actions: pl.DataFrame,
    as_of: datetime | None,
    tz: str = "America/New_York",
    reference: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Add ``price_factor``, ``volume_factor`` and ``actions_known_at`` to each bar (1, 1, null when none apply)."""
    acts = known_actions(actions, as_of).filter(pl.col("symbol_id").is_in(bars["symbol_id"].unique().to_list()))
    cum = cumulative_factors(event_factors(acts, bars if reference is None else reference, tz))
    b = bars.with_row_index("_i").with_columns(bar_trade_date(tz).alias("_day")).sort("_day")
    j = b.join_asof(
        cum.sort("ex_date"),
        left_on="_day",
        right_on="ex_date",
        by="symbol_id",
        strategy="forward",
        allow_exact_matches=False,
        check_sortedness=False,
    )
    return (
        j.sort("_i")
        .with_columns(
            pl.col("cum_price").fill_null(1.0).alias("price_factor"),
            pl.col("cum_volume").fill_null(1.0).alias("volume_factor"),
            pl.col("cum_known_at").alias("actions_known_at"),
        )
        .drop("_i", "_day", "ex_date", "cum_price", "cum_volume", "cum_known_at")
    )


def _default_quality() -> pl.Expr:
    return pl.struct(
        pl.lit(False).alias("stale"),
        pl.lit(0.0).alias("outlier_frac"),
        pl.lit(1, pl.Int64).alias("n_src"),
        pl.lit(None, pl.Float64).alias("lat_ms"),
        pl.lit(None, pl.List(pl.String)).alias("sources"),
        pl.lit(None, pl.List(pl.String)).alias("outliers"),
    )


def adjusted_bars(
    raw_bars: pl.DataFrame,
    actions: pl.DataFrame,
    as_of: datetime | None = None,
    tz: str = "America/New_York",
    reference: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Return silver.bars rows with ``adjustment = "adjusted"`` for ``raw_bars`` (silver raw rows or bronze bars).

    Missing ``quality`` / ``known_at`` columns (bronze input) become a single-source quality
    record and ``known_at = ts``. ``reference`` (e.g. daily bars) supplies the closes that size each
    dividend factor when ``raw_bars`` do not reach back to the ex-date's eve.
    """
    bars = raw_bars
    if "known_at" not in bars.columns:
        bars = bars.with_columns(pl.col("ts").alias("known_at"))
    if "quality" not in bars.columns:
        bars = bars.with_columns(_default_quality().alias("quality"))
    for c, dtype in (("vwap", pl.Float64), ("n_trades", pl.Int64), ("volume", pl.Float64)):
        if c not in bars.columns:
            bars = bars.with_columns(pl.lit(None, dtype).alias(c))
    f = with_factors(
        bars.with_columns(pl.col("ts").cast(TS_NS), pl.col("known_at").cast(TS_NS)), actions, as_of, tz, reference
    )
    return f.select(
        "symbol_id",
        "tf",
        "ts",
        pl.lit("adjusted").alias("adjustment"),
        *[(pl.col(c) * pl.col("price_factor")).alias(c) for c in PRICE_COLUMNS],
        (pl.col("volume").fill_null(0.0) * pl.col("volume_factor")).alias("volume"),
        (pl.col("vwap") * pl.col("price_factor")).alias("vwap"),
        "n_trades",
        "quality",
        pl.max_horizontal("known_at", "actions_known_at").alias("known_at"),
    )


def split_consistency_flags(
    bars: pl.DataFrame, actions: pl.DataFrame, tz: str = "America/New_York", window_days: int = 3
) -> pl.DataFrame:
    """Flag raw bars whose prices contradict the split in force (for the quality gate).

    Around each split (ex-date +- ``window_days``), with C the raw close before the ex-date and R
    the ratio, a bar is flagged when
    - its high/low spans both regimes (log(high/low) > half of log R): a bar mixing pre- and
      post-split prints, like LEAN's AAPL 2014-06-09 04:00 minute bar (645.57 -> 92.23); or
    - its close sits nearer the other regime's level (C before the ex-date, C / R from it on).
    Splits with |log R| < log 1.2 are too small to tell apart from price moves and are skipped.
    Returns ``bars`` plus ``split_flag`` (bool) and ``split_reason`` (null when not flagged).
    """
    splits = actions.filter((pl.col("kind") == "split") & (pl.col("ratio").log().abs() >= float(np.log(1.2))))
    b = bars.with_row_index("_i").with_columns(pl.col("ts").cast(TS_NS), bar_trade_date(tz).alias("_day"))
    empty = b.drop("_i", "_day").with_columns(
        pl.lit(False).alias("split_flag"), pl.lit(None, pl.String).alias("split_reason")
    )
    if splits.height == 0 or b.height == 0:
        return empty
    s = (
        reference_closes(splits, bars.with_columns(pl.col("ts").cast(TS_NS)), tz)
        .select("symbol_id", "ex_date", "ratio", "ref_close")
        .sort("ex_date")
    )
    j = b.sort("_day").join_asof(
        s, left_on="_day", right_on="ex_date", by="symbol_id", strategy="nearest", check_sortedness=False
    )
    near = (pl.col("_day") - pl.col("ex_date")).dt.total_days().abs() <= window_days
    post = pl.col("_day") >= pl.col("ex_date")
    log_r = pl.col("ratio").log().abs()
    spans = near & ((pl.col("high") / pl.col("low")).log() > 0.5 * log_r)
    d_pre = (pl.col("close") / pl.col("ref_close")).log().abs()
    d_post = (pl.col("close") * pl.col("ratio") / pl.col("ref_close")).log().abs()
    wrong = near & pl.col("ref_close").is_not_null() & pl.when(post).then(d_pre < d_post).otherwise(d_post < d_pre)
    reason = (
        pl.when(spans)
        .then(pl.lit("bar spans pre- and post-split prices (high/low near the split ratio)"))
        .when(wrong & post)
        .then(pl.lit("pre-split price on or after the split's ex-date"))
        .when(wrong)
        .then(pl.lit("post-split price before the split's ex-date"))
    )
    out = j.with_columns(reason.alias("split_reason")).with_columns(
        pl.col("split_reason").is_not_null().alias("split_flag")
    )
    return out.sort("_i").drop("_i", "_day", "ex_date", "ratio", "ref_close")
