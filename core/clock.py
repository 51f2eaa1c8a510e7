"""Clocks: domain code receives one (or an ``as_of``) and never reads the wall clock itself.

A clock is any callable returning an aware UTC datetime. ``utc_clock`` is the real one, passed in by
the shell (CLI, flows) when the user asks for "now"; ``FixedClock`` makes tests deterministic.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utc_clock() -> datetime:
    """Return the current time, UTC."""
    return datetime.now(UTC)


@dataclass
class FixedClock:
    """A clock that reads ``now`` until moved with ``advance``."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds``."""
        from datetime import timedelta

        self.now = self.now + timedelta(seconds=seconds)
