"""Roll schedules for continuous futures: which contract is in force from when, and why.

Rules (``roll_rule`` strings, stored with every continuous row):

- ``open_interest``: roll from the contract in force to the next one (by expiry) at the first open
  interest observation where the next contract's last-known OI exceeds the current one's;
- ``volume``: the same with each contract's daily volume (summed bars per UTC day, observed at the
  day's end);
- ``days_before:<n>:<first_notice|last_trade>``: roll n business days before the current
  contract's first notice / last trade date (``days_before:0:last_trade`` = LEAN's LastTradingDay
  mapping, which holds the old contract through the day before the last trading day).

A roll takes effect at 00:00 UTC of the day its signal was observed (LEAN maps contracts per date
in its UTC data time zone), so bars ENDING after that instant belong to the new contract. The
segment's ``known_at`` is when the signal was observed (the OI report's time, or the end of the
volume day); calendar rules are known in advance (null). A contract is never held into its last
trading day: whatever the rule, the roll happens no later than 00:00 UTC of that day.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

import numpy as np
import polars as pl

from core.errors import ConfigError
from lakehouse.futures_contracts import _sessions
from lakehouse.schema import PL_TS as TS_NS


@dataclass(frozen=True)
class RollRule:
    kind: str  # open_interest, volume, days_before
    days: int = 0
    event: str = "last_trade"

    @classmethod
    def parse(cls, text: str) -> RollRule:
        if text in ("open_interest", "volume"):
            return cls(text)
        parts = text.split(":")
        if (
            len(parts) == 3
            and parts[0] == "days_before"
            and parts[1].isdigit()
            and parts[2] in ("first_notice", "last_trade")
        ):
            return cls("days_before", int(parts[1]), parts[2])
        raise ConfigError(
            f"roll rule {text!r}: expected open_interest, volume or days_before:<n>:<first_notice|last_trade>"
        )

    def __str__(self) -> str:
        return self.kind if self.kind != "days_before" else f"days_before:{self.days}:{self.event}"


def _midnight(ts: datetime) -> datetime:
    return ts.replace(hour=0, minute=0, second=0, microsecond=0)


def _utc(d) -> datetime:
    return pl.Series([d]).cast(pl.Datetime("ns")).dt.replace_time_zone("UTC").item()


def daily_volume(bars: pl.DataFrame) -> pl.DataFrame:
    """Per contract and UTC day: summed volume, observed at the day's end (ts)."""
    day = (pl.col("ts") - pl.duration(nanoseconds=1)).dt.date()
    return (
        bars.group_by("symbol_id", day.alias("_d"))
        .agg(pl.col("volume").fill_null(0).sum().alias("value"))
        .select(
            "symbol_id",
            (pl.col("_d").cast(pl.Datetime("ns")).dt.replace_time_zone("UTC") + pl.duration(days=1))
            .cast(TS_NS)
            .alias("ts"),
            "value",
        )
    )


def _first_crossing(obs: pl.DataFrame, cur: str, nxt: str, after: datetime) -> datetime | None:
    """First observation time > ``after`` where the last-known value of ``nxt`` exceeds ``cur``'s."""
    two = obs.filter(pl.col("symbol_id").is_in([cur, nxt]))
    if two.height == 0:
        return None
    wide = (
        two.group_by("ts")
        .agg(
            pl.col("value").filter(pl.col("symbol_id") == cur).last().alias("cur"),
            pl.col("value").filter(pl.col("symbol_id") == nxt).last().alias("nxt"),
        )
        .sort("ts")
        .with_columns(pl.col("cur").forward_fill(), pl.col("nxt").forward_fill())
    )
    hit = wide.filter((pl.col("ts") > after) & (pl.col("nxt") > pl.col("cur")))
    return hit["ts"][0] if hit.height else None


def _business_days_before(d, n: int, calendar: str):
    sessions = _sessions(calendar)
    day = np.datetime64(d, "D")
    if sessions[0] <= day <= sessions[-1]:
        i = int(np.searchsorted(sessions, day))
        return sessions[max(i - n, 0)].astype(object)
    return np.busday_offset(day, -n, roll="backward").astype(object)


def roll_schedule(
    contracts: pl.DataFrame,
    rule: RollRule | str,
    *,
    open_interest: pl.DataFrame | None = None,
    bars: pl.DataFrame | None = None,
    start: datetime | None = None,
    calendar: str = "CMES",
) -> pl.DataFrame:
    """Segments (contract, start, end, known_at) of one root, in expiry order.

    ``contracts`` has contract, last_trade, first_notice; only contracts with bars are used when
    ``bars`` is given. ``start`` defaults to the first bar's end.
    """
    rule = RollRule.parse(rule) if isinstance(rule, str) else rule
    cs = contracts.sort("last_trade")
    if bars is not None:
        cs = cs.filter(pl.col("contract").is_in(bars["symbol_id"].unique().to_list()))
    if cs.height == 0:
        return pl.DataFrame(schema={"contract": pl.String, "start": TS_NS, "end": TS_NS, "known_at": TS_NS})
    if start is None:
        start = (
            cast(datetime, bars["ts"].min()) - timedelta(days=1)
            if bars is not None and bars.height
            else _utc(cs["last_trade"][0]) - timedelta(days=90)
        )
    obs = None
    if rule.kind == "open_interest":
        obs = (
            open_interest
            if open_interest is not None
            else pl.DataFrame(schema={"ts": TS_NS, "symbol_id": pl.String, "open_interest": pl.Float64})
        )
        obs = obs.select(pl.col("ts").cast(TS_NS), "symbol_id", pl.col("open_interest").alias("value"))
    elif rule.kind == "volume":
        obs = daily_volume(bars) if bars is not None else None
    names, lasts = cs["contract"].to_list(), cs["last_trade"].to_list()
    notices = cs["first_notice"].to_list() if "first_notice" in cs.columns else [None] * len(names)
    first: datetime = start
    k = next((i for i, lt in enumerate(lasts) if _utc(lt) > first), len(names) - 1)
    segs: list[tuple[str, datetime, datetime | None]] = [(names[k], first, None)]
    while k + 1 < len(names):
        cur_start = segs[-1][1]
        forced = _utc(lasts[k])  # never hold a contract into its last trading day
        if rule.kind == "days_before":
            event = lasts[k] if rule.event == "last_trade" else notices[k]
            if event is None:
                raise ConfigError(f"roll rule {rule}: contract {names[k]} has no {rule.event} date")
            when, known = _utc(_business_days_before(event, rule.days, calendar)), cast(datetime | None, None)
        else:
            signal = _first_crossing(obs, names[k], names[k + 1], cur_start) if obs is not None else None
            when, known = (_utc(_midnight(signal)), signal) if signal is not None else (forced, None)
        if when > forced:
            when, known = forced, None
        when = max(when, cur_start)
        k += 1
        segs.append((names[k], when, known))
    frame = pl.DataFrame(
        {"contract": [s[0] for s in segs], "start": [s[1] for s in segs], "known_at": [s[2] for s in segs]},
        schema={"contract": pl.String, "start": TS_NS, "known_at": TS_NS},
    )
    return frame.with_columns(pl.col("start").shift(-1).alias("end")).select("contract", "start", "end", "known_at")
