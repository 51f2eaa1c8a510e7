"""Continuous futures series: stitch contracts by a roll schedule, unadjusted, back-adjusted or ratio.

The gap at each roll is measured at the roll instant with prices of both contracts at the same
time: the OPEN of the first common bar after the roll instant, taken from the finest timeframe in
the bars given (a minute bar opening at 00:00 UTC is the last trade before midnight carried into
the new day); if the two contracts share no bar after the roll, the last closes at or before it
(at most 4 days old); with neither, the gap is 0 and the ratio 1 (``price_at = "none"``).
This reproduces LEAN's factor files: for ES Dec-13 -> Mar-14 (open-interest mapping, roll at
2013-12-18 00:00 UTC) both give ESZ13 1780.25, ESH14 1773.75, so the Panama gap is -6.50 points and
the ratio 1773.75 / 1780.25 = 0.996349 (LEAN: BackwardsPanamaCanalScale -159.50 -> -153.00 and
BackwardsRatioScale 0.936868 / 0.940302 between the 2013-12-17 and 2014-03-18 rows).

Methods: ``none`` (raw prices of the contract in force; adjust = 0), ``panama`` (back-adjusted:
each bar plus the sum of the gaps of all later rolls; adjust = that offset) and ``ratio`` (each bar
times the product of new/old price ratios of all later rolls; adjust = that factor).
Back-adjustment rewrites history at each roll, so a row's ``known_at`` is the latest of the bar's
own, the signal that put its contract in force, and every later roll applied to it; ``as_of``
builds the series from the bars and open interest known then.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import polars as pl

from core.errors import ConfigError
from core.timetypes import tf_rank
from lakehouse.futures_roll import TS_NS, RollRule, roll_schedule

METHODS = ("none", "panama", "ratio")
MAX_STALE = timedelta(days=4)  # a close older than this before the roll does not size its gap


def one_delivery_per_key(frame: pl.DataFrame, keys: list[str], priority: Sequence[str] = ()) -> pl.DataFrame:
    """Keep one vendor's row per key: the first source in ``priority``, then any other by name.

    Several vendors may deliver the same contract bar or open-interest print; the continuous series
    needs one. The choice is the user's vendor priority (the strategy's ``universe.sources`` order);
    sources it does not name come after, in name order, so the pick is deterministic either way.
    """
    rank = {s: i for i, s in enumerate(priority)}
    ranked = frame.with_columns(
        pl.col("source").replace_strict(rank, default=len(rank), return_dtype=pl.Int64).alias("_rank")
    )
    return ranked.sort([*keys, "_rank", "source"]).unique(keys, keep="first", maintain_order=True).drop("_rank")


def _trade_bars(bars: pl.DataFrame) -> pl.DataFrame:
    b = bars.filter(pl.col("kind") == "trade") if "kind" in bars.columns else bars
    if "known_at" not in b.columns:
        b = b.with_columns(pl.col("ts").alias("known_at"))
    return b.with_columns(pl.col("ts").cast(TS_NS), pl.col("known_at").cast(TS_NS))


def roll_prices(bars: pl.DataFrame, schedule: pl.DataFrame) -> pl.DataFrame:
    """Per roll: old and new contract, roll instant, the two prices used, gap and ratio."""
    tfs = sorted(bars["tf"].unique().to_list(), key=tf_rank)
    rows = []
    sched = schedule.with_columns(pl.col("contract").shift(1).alias("old")).filter(pl.col("old").is_not_null())
    for old, new, at in sched.select("old", "contract", "start").iter_rows():  # one iteration per roll
        found = None
        for tf in tfs:
            b = bars.filter(pl.col("tf") == tf)
            after = (
                b.filter((pl.col("symbol_id") == old) & (pl.col("ts") > at))
                .select("ts", pl.col("open").alias("p_old"))
                .join(
                    b.filter((pl.col("symbol_id") == new) & (pl.col("ts") > at)).select(
                        "ts", pl.col("open").alias("p_new")
                    ),
                    on="ts",
                )
                .sort("ts")
            )
            if after.height:
                found = (after["p_old"][0], after["p_new"][0], tf, "open_after")
                break
            before = [
                b.filter((pl.col("symbol_id") == c) & (pl.col("ts") <= at) & (pl.col("ts") > at - MAX_STALE)).sort(
                    "ts"
                )["close"]
                for c in (old, new)
            ]
            if all(len(x) for x in before):
                found = (before[0][-1], before[1][-1], tf, "close_before")
                break
        p_old, p_new, tf, how = found or (None, None, None, "none")
        rows.append(
            {"old": old, "contract": new, "start": at, "p_old": p_old, "p_new": p_new, "price_tf": tf, "price_at": how}
        )
    frame = pl.DataFrame(
        rows,
        schema={
            "old": pl.String,
            "contract": pl.String,
            "start": TS_NS,
            "p_old": pl.Float64,
            "p_new": pl.Float64,
            "price_tf": pl.String,
            "price_at": pl.String,
        },
    )
    return frame.with_columns(
        (pl.col("p_new") - pl.col("p_old")).fill_null(0.0).alias("gap"),
        (pl.col("p_new") / pl.col("p_old")).fill_null(1.0).alias("ratio"),
    )


def segment_adjustments(schedule: pl.DataFrame, rolls: pl.DataFrame) -> pl.DataFrame:
    """Per segment: cumulative Panama offset and ratio of all LATER rolls, and their latest known_at."""
    s = (
        schedule.join(rolls.select("contract", "gap", "ratio"), on="contract", how="left")
        .with_columns(pl.col("gap").fill_null(0.0), pl.col("ratio").fill_null(1.0))
        .with_row_index("_k")
    )
    rev = s.sort("_k", descending=True).with_columns(
        (pl.col("gap").cum_sum() - pl.col("gap")).alias("offset"),
        (pl.col("ratio").cum_prod() / pl.col("ratio")).alias("factor"),
        pl.col("known_at").cum_max().shift(1).alias("later_known_at"),
    )
    return rev.sort("_k").drop("_k")


def continuous_series(
    bars: pl.DataFrame,
    open_interest: pl.DataFrame | None,
    contracts: pl.DataFrame,
    rule: RollRule | str,
    method: str,
    as_of: datetime | None = None,
    *,
    tf: str,
    symbol_id: str | None = None,
    calendar: str = "CMES",
) -> pl.DataFrame:
    """Return silver.continuous_futures rows for one root at timeframe ``tf``.

    ``bars``: bronze/silver bars of the root's contracts (any timeframes: the finest sizes the roll
    gaps); ``open_interest``: (ts, symbol_id, open_interest); ``contracts``: bronze.futures_contracts rows.
    """
    if method not in METHODS:
        raise ConfigError(f"continuous method {method!r}: expected one of {', '.join(METHODS)}")
    rule = RollRule.parse(rule) if isinstance(rule, str) else rule
    b = _trade_bars(bars)
    oi = open_interest.with_columns(pl.col("ts").cast(TS_NS)) if open_interest is not None else None
    if as_of is not None:
        cut = pl.lit(as_of).cast(TS_NS)
        b = b.filter(pl.col("known_at") <= cut)
        oi = oi.filter(pl.col("ts") <= cut) if oi is not None else None
    if symbol_id is None:
        first = contracts["contract"][0] if contracts.height else "X:X"
        symbol_id = (
            f"{contracts['root'][0]}:{first.split(':', 1)[1]}"
            if "root" in contracts.columns and contracts.height
            else first
        )
    out_bars = b.filter(pl.col("tf") == tf)
    schedule = roll_schedule(contracts, rule, open_interest=oi, bars=b, calendar=calendar)
    if b.height:  # rolls after the last bar are not history yet
        schedule = schedule.filter(pl.col("start") <= b["ts"].max()).with_columns(
            pl.when(pl.col("end") > b["ts"].max()).then(None).otherwise(pl.col("end")).alias("end")
        )
    rolls = roll_prices(b, schedule)
    segs = segment_adjustments(schedule, rolls)
    j = (
        out_bars.join(segs, left_on="symbol_id", right_on="contract")
        .filter((pl.col("ts") > pl.col("start")) & (pl.col("end").is_null() | (pl.col("ts") <= pl.col("end"))))
        .sort("ts")
    )
    prices = ["open", "high", "low", "close"]
    if method == "panama":
        adjusted, adjust = [(pl.col(c) + pl.col("offset")).alias(c) for c in prices], pl.col("offset")
        known = pl.max_horizontal("known_at", "known_at_right", "later_known_at")
    elif method == "ratio":
        adjusted, adjust = [(pl.col(c) * pl.col("factor")).alias(c) for c in prices], pl.col("factor")
        known = pl.max_horizontal("known_at", "known_at_right", "later_known_at")
    else:
        adjusted, adjust = [pl.col(c) for c in prices], pl.lit(0.0)
        known = pl.max_horizontal("known_at", "known_at_right")
    return j.select(
        pl.lit(symbol_id).alias("symbol_id"),
        pl.lit(tf).alias("tf"),
        "ts",
        pl.lit(method).alias("method"),
        pl.lit(str(rule)).alias("roll_rule"),
        pl.col("symbol_id").alias("contract"),
        ((pl.col("symbol_id") != pl.col("symbol_id").shift(1)) & pl.col("symbol_id").shift(1).is_not_null()).alias(
            "roll"
        ),
        *adjusted,
        pl.col("volume").fill_null(0.0).alias("volume"),
        adjust.cast(pl.Float64).alias("adjust"),
        known.alias("known_at"),
    )
