"""The simulator's trading sessions: which days it simulates and when each session opens and closes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np

from lakehouse.schema import DAY_NS, NS_PER_S


@dataclass(frozen=True)
class Session:
    """One simulated session: its date, UTC open/close (ns) and the full session length (ns)."""

    day: date
    open_ns: int
    close_ns: int
    full_ns: int  # the session's length before any ``session_minutes`` truncation

    @property
    def seconds(self) -> float:
        return (self.close_ns - self.open_ns) / NS_PER_S


def _epoch_ns(dt: datetime) -> int:
    return int((dt - datetime(1970, 1, 1, tzinfo=UTC)) / timedelta(microseconds=1)) * 1000


def sessions(calendar: str, start: date, n_days: int, minutes: int | None = None) -> list[Session]:
    """Return ``n_days`` sessions from ``start``: XNYS trading days (09:30-16:00 New York, early closes
    included) or 24/7 UTC calendar days; ``minutes`` keeps only the first minutes of each."""
    if calendar == "24/7":
        days = [start + timedelta(days=i) for i in range(n_days)]
        bounds = [(_epoch_ns(datetime(d.year, d.month, d.day, tzinfo=UTC)),) * 2 for d in days]
        bounds = [(o, o + DAY_NS) for o, _ in bounds]
    else:
        import exchange_calendars as xcals

        cal = xcals.get_calendar(calendar)
        found = cal.sessions_in_range(start, start + timedelta(days=n_days * 2 + 14))[:n_days]
        days = [s.date() for s in found]
        bounds = [
            (_epoch_ns(cal.session_open(s).to_pydatetime()), _epoch_ns(cal.session_close(s).to_pydatetime()))
            for s in found
        ]
    out = []
    for d, (o, c) in zip(days, bounds):
        close = c if minutes is None else min(c, o + minutes * 60 * NS_PER_S)
        out.append(Session(d, o, close, c - o))
    return out


def year_seconds(calendar: str) -> float:
    """Seconds of trading in a year, to turn annualised vol into per-step vol."""
    return 365 * 86_400.0 if calendar == "24/7" else 252 * 23_400.0


def u_shape(fraction: np.ndarray, depth: float) -> np.ndarray:
    """Intraday seasonality with mean 1 over the session: high at the open and close, low at midday."""
    return 1.0 + depth * ((2.0 * fraction - 1.0) ** 2 - 1.0 / 3.0)
