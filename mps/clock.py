"""The wall clock, for the application shell only.

Domain code takes a clock (a callable returning an aware UTC datetime) or an ``as_of``; the CLI and
the flows pass this one when the user asks for "now".
"""

from __future__ import annotations

from datetime import datetime, timezone


def utc_clock() -> datetime:
    """The current time, UTC."""
    return datetime.now(timezone.utc)
