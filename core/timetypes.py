"""Time types shared by every layer: the ns-UTC timestamp and the one table of bar timeframes.

Timestamps are UTC nanoseconds everywhere (Delta stores them as int64; readers restore
``timestamp[ns, UTC]``). Bars are stamped at their END.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import overload

import polars as pl
import pyarrow as pa

from core.errors import ConfigError

TS = pa.timestamp("ns", tz="UTC")
PL_TS = pl.Datetime("ns", "UTC")  # the same type in polars: every frame's timestamps

NS_PER_S = 1_000_000_000
MINUTE_NS = 60 * NS_PER_S
HOUR_NS = 60 * MINUTE_NS
DAY_NS = 86_400 * NS_PER_S

# Bar length in ns, in increasing order; "1d" is one bar per trading session (its length varies).
TIMEFRAMES: dict[str, int | None] = {
    "1s": NS_PER_S,
    "1m": MINUTE_NS,
    "5m": 5 * MINUTE_NS,
    "15m": 15 * MINUTE_NS,
    "1h": HOUR_NS,
    "1d": None,
}
TF_ORDER: tuple[str, ...] = tuple(TIMEFRAMES)


def tf_ns(tf: str) -> int | None:
    """Return the bar length of ``tf`` in ns (None for "1d": one bar per session)."""
    try:
        return TIMEFRAMES[tf]
    except KeyError:
        raise ConfigError(f"unknown timeframe {tf!r}; known: {', '.join(TIMEFRAMES)}") from None


def tf_rank(tf: str) -> int:
    """Return the position of ``tf`` from finest to coarsest (unknown timeframes sort last)."""
    return TF_ORDER.index(tf) if tf in TIMEFRAMES else len(TF_ORDER)


@overload
def parse_utc(value: str) -> datetime: ...
@overload
def parse_utc(value: None) -> None: ...
@overload
def parse_utc(value: str | None) -> datetime | None: ...
def parse_utc(value: str | None) -> datetime | None:
    """Parse an ISO-8601 time as an aware datetime; a naive one is taken as UTC; None stays None."""
    if value is None:
        return None
    try:
        ts = datetime.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"{value!r}: not an ISO-8601 time") from None
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)
