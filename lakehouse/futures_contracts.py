"""Futures contract definitions: month codes, symbol ids, and the exchange rules for key dates.

Rules used (CME Group contract specifications):

- ES (E-mini S&P 500, CME): quarterly months H, M, U, Z. Last trade = the third Friday of the
  contract month (trading stops 09:30 ET, i.e. at the Special Opening Quotation); if that Friday is
  not a CME business day, the business day before. Cash-settled, so there is no first notice day.
  Expiry = last trade.
- GC (Gold, COMEX): monthly listing. Last trade = the third-last business day of the contract
  month. First notice = the last business day of the month before the contract month (the day
  before the first delivery day's notice, as COMEX defines it). Expiry = last trade.

Business days come from the exchange-calendars calendar of the exchange (CMES, COMEX) where it
covers the date, and from Monday-Friday outside its range. Multiplier and tick size come from
LEAN's ``symbol-properties-database.csv`` (``contract_multiplier``, ``minimum_price_variation``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path

import numpy as np
import polars as pl

from core.errors import SourceError

MONTH_CODES = "FGHJKMNQUVXZ"  # January .. December
CONTRACT_RE = re.compile(r"^(?P<root>[A-Z0-9]+?)(?P<code>[FGHJKMNQUVXZ])(?P<yy>\d{2})$")


@dataclass(frozen=True)
class Market:
    """How one LEAN futures market maps to the platform: symbol suffix and business calendar."""

    lean: str  # LEAN's market folder: cme, comex
    suffix: str  # symbol_id suffix: CME, CMX
    calendar: str  # exchange-calendars name
    tz: str


MARKETS: dict[str, Market] = {
    "cme": Market("cme", "CME", "CMES", "America/Chicago"),
    "comex": Market("comex", "CMX", "COMEX", "America/Chicago"),
}


def market(lean_market: str) -> Market:
    try:
        return MARKETS[lean_market.lower()]
    except KeyError:
        raise SourceError(f"unknown LEAN futures market {lean_market!r}; known: {', '.join(MARKETS)}") from None


def contract_symbol(root: str, year: int, month: int, suffix: str) -> str:
    """``contract_symbol("ES", 2013, 12, "CME") -> "ESZ13:CME"``."""
    if not 1 <= month <= 12:
        raise ValueError(f"contract month {month} out of range")
    return f"{root.upper()}{MONTH_CODES[month - 1]}{year % 100:02d}:{suffix}"


def continuous_symbol(root: str, suffix: str) -> str:
    return f"{root.upper()}:{suffix}"


def parse_contract(symbol_id: str, century: int = 2000) -> tuple[str, int, int]:
    """Split ``"ESZ13:CME"`` into (root, year, month)."""
    ticker = symbol_id.split(":", 1)[0]
    m = CONTRACT_RE.match(ticker)
    if not m:
        raise ValueError(f"{symbol_id!r} is not a futures contract symbol like ESZ13:CME")
    return m["root"], century + int(m["yy"]), MONTH_CODES.index(m["code"]) + 1


@lru_cache(maxsize=8)
def _sessions(calendar: str) -> np.ndarray:
    import exchange_calendars as xc

    cal = xc.get_calendar(calendar)
    return cal.sessions.values.astype("datetime64[D]")


def _is_business_day(d: date, calendar: str) -> bool:
    sessions = _sessions(calendar)
    day = np.datetime64(d, "D")
    if sessions[0] <= day <= sessions[-1]:
        i = np.searchsorted(sessions, day)
        return bool(i < len(sessions) and sessions[i] == day)
    return d.weekday() < 5


def business_days_in_month(year: int, month: int, calendar: str) -> list[date]:
    first = date(year, month, 1)
    nxt = date(year + month // 12, month % 12 + 1, 1)
    return [
        first + timedelta(days=i)
        for i in range((nxt - first).days)
        if _is_business_day(first + timedelta(days=i), calendar)
    ]


def third_friday(year: int, month: int) -> date:
    first = date(year, month, 1)
    return first + timedelta(days=(4 - first.weekday()) % 7 + 14)


def _previous_business_day(d: date, calendar: str) -> date:
    while not _is_business_day(d, calendar):
        d -= timedelta(days=1)
    return d


@dataclass(frozen=True)
class ContractDates:
    expiry: date
    last_trade: date
    first_notice: date | None


def es_dates(year: int, month: int, calendar: str = "CMES") -> ContractDates:
    last = _previous_business_day(third_friday(year, month), calendar)
    return ContractDates(last, last, None)


def gc_dates(year: int, month: int, calendar: str = "COMEX") -> ContractDates:
    last = business_days_in_month(year, month, calendar)[-3]
    py, pm = (year, month - 1) if month > 1 else (year - 1, 12)
    first_notice = business_days_in_month(py, pm, calendar)[-1]
    return ContractDates(last, last, first_notice)


RULES = {"ES": es_dates, "GC": gc_dates}


def contract_dates(root: str, year: int, month: int, calendar: str) -> ContractDates:
    """Key dates of one contract under its root's rule; unknown roots are an error naming them."""
    try:
        rule = RULES[root.upper()]
    except KeyError:
        raise SourceError(f"no contract date rule for futures root {root!r}; known: {', '.join(RULES)}") from None
    return rule(year, month, calendar)


def read_symbol_properties(path: Path, lean_market: str, root: str) -> tuple[float, float]:
    """Return (multiplier, tick size) of ``root`` on ``lean_market`` from LEAN's properties CSV."""
    try:
        props = pl.read_csv(path, comment_prefix="#", infer_schema=False)
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise SourceError(f"{path}: cannot read symbol properties: {exc}") from exc
    row = props.filter(
        (pl.col("market").str.to_lowercase() == lean_market.lower())
        & (pl.col("symbol").str.to_uppercase() == root.upper())
        & (pl.col("type") == "future")
    )
    if row.height == 0:
        raise SourceError(f"{path}: no future {root} on market {lean_market}")
    return float(row["contract_multiplier"][0]), float(row["minimum_price_variation"][0])
