"""Point-in-time corporate-action adjustment for features: each row sees prices as known at its known_at.

Silver's adjusted rows are written per window with the actions known then, so a split learned later
leaves earlier rows on the old basis, and a back-adjusted history rewritten today would leak the
future into the past. Features therefore read RAW bars and adjust them here, row by row:

- the actions a row at ``ts`` (known at ``known_at``) may use are those already announced
  (``action.known_at <= row.known_at``) and already in effect (``ex_date <= the row's trading day``);
- the row's features are computed on the whole history up to ``ts``, back-adjusted with exactly
  those actions (``lakehouse.adjust.with_factors``: split ratio and CRSP dividend factors).

The applicable set only grows along a series (``known_at`` is a running max, trading days increase),
so a symbol's rows split into a few segments, one per action taking effect; each segment is
computed once on the history up to its end. The last bar of every row's history is never adjusted
(its own ex-date has not passed), so features always see the price that actually traded at ts.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import polars as pl

from feature_store.bars.compute import is_ordered
from lakehouse.adjust import PRICE_COLUMNS, bar_trade_date, with_factors
from lakehouse.corporate_actions import TS_NS

Compute = Callable[[pl.DataFrame], pl.DataFrame]
ACTION_COLUMNS = ("symbol_id", "ex_date", "kind", "ratio", "amount", "known_at")
_SEP = "\x1f"  # tags a segment's copy of a series: "AAPL:US\x1f3"
_FROM = "_seg_from"


def activation_rows(bars: pl.DataFrame, actions: pl.DataFrame, tz: str) -> np.ndarray:
    """For one symbol's bars (sorted by ts): the first row index at which each action applies.

    ``len(bars)`` means the action applies to no row of ``bars``.
    """
    known = bars.select(pl.max_horizontal("known_at", "ts").cast(TS_NS).cum_max().dt.epoch("ns"))[:, 0].to_numpy()
    days = bars.select(bar_trade_date(tz))[:, 0].to_numpy()
    a_known = actions["known_at"].cast(TS_NS).dt.epoch("ns").to_numpy()
    a_day = actions["ex_date"].to_numpy()
    return np.maximum(np.searchsorted(known, a_known, "left"), np.searchsorted(days, a_day, "left"))


def adjust_with(bars: pl.DataFrame, actions: pl.DataFrame, tz: str) -> pl.DataFrame:
    """Back-adjust ``bars`` with exactly ``actions`` (prices and vwap by the price factor, volume by the volume factor)."""
    if actions.height == 0:
        return bars
    f = with_factors(bars, actions, None, tz)
    cols = [c for c in (*PRICE_COLUMNS, "vwap") if c in bars.columns]
    return f.with_columns(
        *(pl.col(c) * pl.col("price_factor") for c in cols),
        pl.col("volume") * pl.col("volume_factor"),
    ).drop("price_factor", "volume_factor", "actions_known_at")


def pit_features(
    bars: pl.DataFrame, actions: pl.DataFrame | None, compute: Compute, tz: str = "America/New_York"
) -> pl.DataFrame:
    """Run ``compute`` (bars -> one row per bar, keyed symbol_id, ts) on point-in-time adjusted prices.

    ``bars`` are RAW bars of one timeframe (several symbols allowed); ``actions`` are
    bronze.corporate_actions rows (None or empty: no adjustment). Every segment's history is
    stacked as its own series (``symbol_id`` tagged with the segment) so ``compute`` runs once.
    """
    bars = bars.with_columns(pl.col("ts").cast(TS_NS), pl.col("known_at").cast(TS_NS))
    if not is_ordered(bars):
        bars = bars.sort("symbol_id", "ts")
    if actions is None or actions.height == 0:
        return compute(bars)
    acts = actions.select(*ACTION_COLUMNS).with_columns(pl.col("known_at").cast(TS_NS))
    with_acts = set(acts["symbol_id"].unique().to_list()) & set(bars["symbol_id"].unique().to_list())
    pieces = [bars.filter(~pl.col("symbol_id").is_in(list(with_acts))).with_columns(pl.lit(None, TS_NS).alias(_FROM))]
    for symbol in sorted(with_acts):
        b = bars.filter(pl.col("symbol_id") == symbol)
        a = acts.filter(pl.col("symbol_id") == symbol)
        start = activation_rows(b, a, tz)
        bounds = sorted({0, *(int(s) for s in start if s < b.height)}) + [b.height]
        for k, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
            seg = adjust_with(b.head(hi), a.filter(pl.Series(start <= lo)), tz)
            pieces.append(
                seg.with_columns(
                    (pl.col("symbol_id") + f"{_SEP}{k}").alias("symbol_id"),
                    pl.lit(b["ts"][lo]).cast(TS_NS).alias(_FROM),
                )
            )
    stacked = pl.concat(pieces, how="diagonal_relaxed")
    starts = stacked.group_by("symbol_id").agg(pl.col(_FROM).first())
    out = compute(stacked.drop(_FROM)).join(starts, on="symbol_id", how="left")
    keep = out.filter(pl.col(_FROM).is_null() | (pl.col("ts") >= pl.col(_FROM)))
    return keep.with_columns(pl.col("symbol_id").str.split(_SEP).list.first()).drop(_FROM).sort("symbol_id", "ts")
