"""LEAN time conventions: data time zones, bar periods and the stamp at a bar's end.

LEAN stamps a bar at its START in the data time zone (a minute bar at 09:30 covers 09:30-09:31; an
hour bar at 09:00 covers the hour's trading, 09:30-10:00 on the first hour); bronze stamps bars at
their END in UTC. Daily bars are dated at midnight: equity daily bars are stamped at that day's
XNYS session close (16:00 America/New_York, 13:00 on half days, from exchange-calendars), other
daily bars (FX, crypto) at the next midnight of their data time zone.

Data time zones (LEAN's market-hours database): US equities and options America/New_York, crypto
UTC. Forex is UTC for OANDA; for FXCM LEAN declares a fixed UTC-05 offset. This adapter reads both
FX vendors as UTC by default so that the real 300-minute FXCM/OANDA offset stays visible in bronze
for silver's clock-offset detection; ``Params.fx_data_tz`` can set FXCM to "Etc/GMT+5" (LEAN's
declaration), which aligns the two vendors.
"""

from __future__ import annotations

from datetime import date

import polars as pl

from lakehouse import calendars
from lakehouse.schema import PL_TS as NS  # noqa: F401  (re-exported to lean_layouts and lean_universe)

NY = "America/New_York"
UTC = "UTC"
MS_PER_DAY = 86_400_000

TF = {"second": "1s", "minute": "1m", "hour": "1h", "daily": "1d"}
PERIOD = {"second": "1s", "minute": "1m", "hour": "1h", "daily": "1d"}


def data_tz(asset_class: str, market: str, fx_data_tz: dict[str, str]) -> str:
    """The time zone LEAN's timestamps are written in for this asset class and market."""
    if asset_class in ("equity", "option", "indexoption"):
        return NY
    if asset_class == "forex":
        return fx_data_tz.get(market, UTC)
    return UTC


def localize(naive: pl.Expr, tz: str) -> pl.Expr:
    """Read naive wall-clock times in ``tz`` as UTC nanoseconds (DST-aware).

    A wall time that does not exist (the spring-forward gap) becomes null, so the row is quarantined
    as "ts is missing"; an ambiguous one (the fall-back hour) takes the earlier instant.
    """
    return (
        naive.dt.replace_time_zone(tz, ambiguous="earliest", non_existent="null")
        .dt.convert_time_zone(UTC)
        .dt.cast_time_unit("ns")
    )


def ms_since_midnight(day: date, ms: pl.Expr) -> pl.Expr:
    """Naive wall-clock datetime of ``ms`` (fractional) milliseconds after midnight of ``day``."""
    return pl.lit(day).cast(pl.Datetime("ns")) + pl.duration(nanoseconds=(ms * 1_000_000).round().cast(pl.Int64))


def session_close(df: pl.DataFrame, start_col: str) -> pl.Series:
    """Stamp equity daily bars at the XNYS close of their date (16:00 New York when not a session)."""
    days = df.select(pl.col(start_col).dt.date().alias("_date"))
    closes = calendars.session_close("XNYS", days.get_column("_date"))
    fallback = localize(pl.col("_date").cast(pl.Datetime("ns")) + pl.duration(hours=16), NY)
    return (
        days.with_columns(closes.alias("_close"))
        .select(pl.coalesce(pl.col("_close"), fallback).alias("ts"))
        .get_column("ts")
    )


def bar_end(df: pl.DataFrame, start_col: str, resolution: str, asset_class: str, tz: str) -> pl.Series:
    """The UTC end stamp of bars whose naive local START times are in ``start_col``."""
    if resolution == "daily" and asset_class == "equity":
        return session_close(df, start_col)
    end = pl.col(start_col).dt.offset_by(PERIOD[resolution])
    return df.select(localize(end, tz).alias("ts")).get_column("ts")
