"""Trading sessions per calendar: when a market is open, so that bars are only made while it is.

The security master names a calendar per instrument: an exchange-calendars code ("XNYS", "XNAS",
"CMES" for CME Globex equity futures, ...), "24/5" for spot FX or "24/7" for crypto. ``sessions``
turns a name and a time range into session intervals ``[open, close]`` in UTC nanoseconds, with
early closes (half days) and lunch breaks as the calendar defines them.

- exchange calendars come from ``exchange_calendars`` (built once per name and decade, cached);
- "24/5" is the FX week: each session runs from 17:00 America/New_York on the previous day to
  17:00 New York on a weekday (Sunday evening to Friday 17:00), whatever the DST in force;
- "24/7" is one session per UTC day.
"""

from __future__ import annotations

from datetime import date, datetime
from functools import lru_cache
from typing import cast

import polars as pl
from polars._typing import SchemaDict

from core.errors import ConfigError
from lakehouse.schema import PL_TS as TS

SESSION_SCHEMA: SchemaDict = {"calendar": pl.String, "session": pl.Date, "open": TS, "close": TS}

ALIASES = {"CME": "CMES", "GLOBEX": "CMES", "NYSE": "XNYS", "NASDAQ": "XNAS", "FX": "24/5", "CRYPTO": "24/7"}
FX_ROLL_TZ = "America/New_York"


def canonical(name: str) -> str:
    """Map a security-master calendar name to the one ``sessions`` understands."""
    upper = name.strip().upper()
    return ALIASES.get(upper, upper)


@lru_cache(maxsize=64)
def _exchange_sessions(name: str, decade: int) -> pl.DataFrame:
    import exchange_calendars as xc

    try:
        cal = xc.get_calendar(name, start=f"{max(decade, 1990)}-01-01", end=f"{decade + 10}-01-31")
    except xc.errors.InvalidCalendarName as exc:
        raise ConfigError(f"unknown trading calendar {name!r}: {exc}") from None
    sched = cal.schedule
    frame = pl.DataFrame(
        {
            "session": pl.Series(sched.index.to_numpy(dtype="datetime64[ns]")).cast(pl.Date),
            "open": pl.Series(sched["open"].to_numpy(dtype="datetime64[ns]")).dt.replace_time_zone("UTC"),
            "close": pl.Series(sched["close"].to_numpy(dtype="datetime64[ns]")).dt.replace_time_zone("UTC"),
            "break_start": pl.Series(sched["break_start"].to_numpy(dtype="datetime64[ns]")).dt.replace_time_zone("UTC"),
            "break_end": pl.Series(sched["break_end"].to_numpy(dtype="datetime64[ns]")).dt.replace_time_zone("UTC"),
        }
    )
    # a session with a lunch break is two intervals: [open, break_start] and [break_end, close]
    plain = frame.filter(pl.col("break_start").is_null()).select("session", "open", "close")
    morning = frame.filter(pl.col("break_start").is_not_null()).select(
        "session", "open", pl.col("break_start").alias("close")
    )
    afternoon = frame.filter(pl.col("break_start").is_not_null()).select(
        "session", pl.col("break_end").alias("open"), "close"
    )
    return pl.concat([plain, morning, afternoon]).sort("open")


def _generated_sessions(name: str, first: date, last: date) -> pl.DataFrame:
    days = pl.date_range(first, last, "1d", eager=True).alias("session")
    frame = pl.DataFrame(days)
    if name == "24/7":
        return frame.with_columns(
            pl.col("session").cast(pl.Datetime("ns")).dt.replace_time_zone("UTC").alias("open"),
            (pl.col("session") + pl.duration(days=1))
            .cast(pl.Datetime("ns"))
            .dt.replace_time_zone("UTC")
            .alias("close"),
        )
    # 24/5: weekday sessions from 17:00 New York the evening before to 17:00 New York
    frame = frame.filter(pl.col("session").dt.weekday() <= 5)
    roll = pl.col("session").cast(pl.Datetime("ns")) + pl.duration(hours=17)
    return frame.with_columns(
        (roll - pl.duration(days=1)).dt.replace_time_zone(FX_ROLL_TZ).dt.convert_time_zone("UTC").alias("open"),
        roll.dt.replace_time_zone(FX_ROLL_TZ).dt.convert_time_zone("UTC").alias("close"),
    )


def sessions(calendar: str, start: datetime | date, end: datetime | date) -> pl.DataFrame:
    """Return the session intervals of ``calendar`` that overlap ``[start, end]``.

    Columns: calendar, session (the session's date label), open, close (UTC ns). Half days carry
    their early close; sessions with a lunch break appear as two intervals.
    """
    name = canonical(calendar)
    first = start.date() if isinstance(start, datetime) else start
    last = end.date() if isinstance(end, datetime) else end
    lo = pl.Series([start]).cast(TS).item() if isinstance(start, datetime) else None
    hi = pl.Series([end]).cast(TS).item() if isinstance(end, datetime) else None
    pad_first, pad_last = date.fromordinal(first.toordinal() - 3), date.fromordinal(last.toordinal() + 3)
    if name in ("24/5", "24/7"):
        frame = _generated_sessions(name, pad_first, pad_last)
    else:
        decades = range(pad_first.year // 10 * 10, pad_last.year // 10 * 10 + 1, 10)
        frame = pl.concat([_exchange_sessions(name, d) for d in decades]).unique("open", keep="first")
        frame = frame.filter(pl.col("session").is_between(pad_first, pad_last))
    if lo is not None:
        frame = frame.filter(pl.col("close") >= lo)
    else:
        frame = frame.filter(pl.col("session") >= first)
    if hi is not None:
        frame = frame.filter(pl.col("open") <= hi)
    else:
        frame = frame.filter(pl.col("session") <= last)
    return (
        frame.select(pl.lit(name).alias("calendar"), "session", "open", "close")
        .sort("open")
        .cast(pl.Schema(SESSION_SCHEMA))
    )


def sessions_for(calendars: list[str], start: datetime, end: datetime) -> pl.DataFrame:
    """Return ``sessions`` for several calendars stacked (calendar names canonicalised)."""
    frames = [sessions(c, start, end) for c in sorted({canonical(c) for c in calendars})]
    return pl.concat(frames) if frames else pl.DataFrame(schema=SESSION_SCHEMA)


def session_close(calendar: str, days: pl.Series) -> pl.Series:
    """Return each date's session close (UTC ns) for ``calendar``; null where it is not a session.

    Daily vendor bars carry only a date; their bar END is that session's close (a half day's
    early close included).
    """
    days = days.cast(pl.Date)
    if days.len() == 0 or days.drop_nulls().len() == 0:
        return pl.Series(days.name, [None] * days.len(), dtype=TS)
    table = (
        sessions(calendar, cast(date, days.min()), cast(date, days.max()))
        .group_by("session")
        .agg(pl.col("close").max())
    )
    return pl.DataFrame({"session": days}).join(table, on="session", how="left", maintain_order="left")["close"]
