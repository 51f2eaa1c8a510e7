"""Derived columns the expectations check: vectorised statistics computed in polars first.

Great Expectations stays the single validation engine; what it cannot express (per-series order,
rolling volatility, rolling median volume) is computed here as ``_``-prefixed columns, in the
batch's own row order, and the suites put plain range expectations on them:

- ``_ts_step_ns``: ts minus the previous ts of the same series in batch order (null for the first);
- ``_jump_z``: the bar's largest log move away from the previous close (or its own log range for a
  series' first bar), in units of the series' recent robust volatility;
- ``_volume_excess``: volume over a rolling quantile of the series' previous volumes, divided by
  the ratio the bar's timeframe allows (so one bound, <= 1, serves every timeframe).

``history`` (earlier rows of the same table, e.g. the last days of silver.bars) warms the rolling
windows up; it is never validated. ``splits`` (symbol_id, ex_date, ratio) removes known split
jumps from raw bars so that only unexplained jumps count.
"""

from __future__ import annotations

import polars as pl

from lakehouse.quality.rules import JumpRule, QualityRules, VolumeRule

IDX = "_idx"
_MAD_TO_SIGMA = 1 / 0.6745


def ts_step(df: pl.DataFrame, series: list[str]) -> pl.DataFrame:
    """Add ``_ts_step_ns``: the time since the previous row of the same series, in batch order."""
    ns = pl.col("ts").cast(pl.Datetime("ns", "UTC")).dt.epoch("ns")
    step = ns - ns.shift(1)
    return df.with_columns((step.over(series) if series else step).alias("_ts_step_ns"))


def _with_split_factor(df: pl.DataFrame, splits: pl.DataFrame | None, tz: str) -> pl.DataFrame:
    if splits is None or splits.height == 0:
        return df.with_columns(pl.lit(1.0).alias("_cum_split"))
    cum = (
        splits.select("symbol_id", pl.col("ex_date").cast(pl.Date), pl.col("ratio").cast(pl.Float64))
        .sort("symbol_id", "ex_date")
        .with_columns(pl.col("ratio").cum_prod().over("symbol_id").alias("_cum_split"))
        .drop("ratio")
        .sort("ex_date")
    )
    # A bar belongs to the session of its last instant (bars are stamped at their end).
    session = (
        (pl.col("ts").cast(pl.Datetime("ns", "UTC")) - pl.duration(nanoseconds=1)).dt.convert_time_zone(tz).dt.date()
    )
    dated = df.with_columns(session.alias("_session")).sort("_session")
    joined = dated.join_asof(
        cum, left_on="_session", right_on="ex_date", by="symbol_id", strategy="backward", check_sortedness=False
    )
    return joined.drop("_session", "ex_date").with_columns(pl.col("_cum_split").fill_null(1.0)).sort(IDX)


def _move(ref: pl.Expr) -> pl.Expr:
    """The bar's largest absolute log distance from a reference price."""
    return pl.max_horizontal((pl.col("high") / ref).log().abs(), (pl.col("low") / ref).log().abs())


def jump_z(df: pl.DataFrame, series: list[str], rule: JumpRule) -> pl.Expr:
    """Return the ``_jump_z`` expression for a frame sorted by series then ts (with ``_cum_split``).

    The move is measured from the previous close AND from the close before it, and the smaller z
    counts: a bad bar is far from both, while the good bar after a bad close is near the older one,
    so one bad print quarantines one bar, not two. A real level shift flags only its first bar.
    """
    adj = pl.col("_cum_split")
    prev1 = (pl.col("close").shift(1) * adj.shift(1) / adj).over(series)
    prev2 = (pl.col("close").shift(2) * adj.shift(2) / adj).over(series)
    ret = (pl.col("close") / prev1).log()
    scale = (ret.abs().shift(1).rolling_median(rule.window, min_samples=rule.min_periods) * _MAD_TO_SIGMA).over(series)
    fallback = (ret.abs().median() * _MAD_TO_SIGMA).over(series)
    sigma = pl.max_horizontal(pl.coalesce(scale, fallback), pl.lit(rule.min_vol))
    # Moves over longer gaps (overnight, weekends, missing data) may be larger: sqrt-of-time scaling.
    ns = pl.col("ts").cast(pl.Datetime("ns", "UTC")).dt.epoch("ns")
    step = (ns - ns.shift(1)).over(series)
    typical = step.median().over(series)
    span1 = (step / typical).clip(lower_bound=1.0).fill_null(1.0)
    span2 = (((ns - ns.shift(2)).over(series)) / typical).clip(lower_bound=2.0)
    z1 = _move(prev1) / (sigma * span1.sqrt())
    z2 = _move(prev2) / (sigma * span2.sqrt())
    first = (pl.col("high") / pl.col("low")).log().abs() / sigma  # a series' first bar: its own range
    return pl.coalesce(pl.min_horizontal(z1, z2), first).alias("_jump_z")


def volume_excess(series: list[str], rule: VolumeRule) -> pl.Expr:
    """Return ``_volume_excess`` for a frame sorted by series then ts (with ``_cum_split``).

    It is the bar's volume over the rolling baseline of the series (in split-adjusted shares), as a
    fraction of the ratio the bar's timeframe allows: above 1 fails.
    """
    shares = pl.col("volume") * pl.col("_cum_split").last().over(series) / pl.col("_cum_split")
    base = (
        shares.shift(1)
        .rolling_quantile(rule.quantile, "linear", window_size=rule.window, min_samples=rule.min_periods)
        .over(series)
    )
    return (shares / base.clip(lower_bound=1.0) / rule.max_ratio).alias("_volume_excess")


def bar_statistics(
    df: pl.DataFrame,
    series: list[str],
    rules: QualityRules,
    history: pl.DataFrame | None = None,
    splits: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Add ``_jump_z`` and ``_volume_excess`` to OHLCV bars, keeping the batch's row order.

    ``series`` names the columns of one series (e.g. symbol_id, tf, adjustment); rows of ``history``
    only feed the rolling windows and are dropped from the result.
    """
    needed = [*series, "ts", "high", "low", "close", "volume"]
    batch = df.select(needed).with_row_index(IDX).with_columns(pl.lit(True).alias("_in_batch"))
    if history is not None and history.height:
        past = history.select(needed).with_columns(pl.lit(None, pl.UInt32).alias(IDX), pl.lit(False).alias("_in_batch"))
        batch = pl.concat([batch, past.select(batch.columns)], how="vertical_relaxed")
    batch = _with_split_factor(batch.with_columns(pl.col(IDX).fill_null(pl.len())), splits, rules.session_tz)
    parts = []
    tf_groups = batch.partition_by("tf", as_dict=False) if "tf" in series else [batch]
    for part in tf_groups:
        tf = part.get_column("tf")[0] if "tf" in series else "1d"
        ordered = part.sort([*series, "ts", IDX])
        parts.append(
            ordered.with_columns(jump_z(ordered, series, rules.jump), volume_excess(series, rules.volume_rule(tf)))
        )
    stats = pl.concat(parts).filter(pl.col("_in_batch")).sort(IDX).select("_jump_z", "_volume_excess")
    return df.with_columns(stats)
