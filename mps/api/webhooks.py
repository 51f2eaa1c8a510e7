"""Inbound webhooks: verify the HMAC signature and timestamp, refuse replays, emit a Prefect event.

The signature scheme is ``lakehouse.webhooks`` (shared with the outbound side). A request is
accepted only if its timestamp is within the tolerance of the API's clock and its signature was
not seen within that window (an in-process cache; a replay after the window fails the timestamp
check instead).
"""

from __future__ import annotations

import threading
import time

from lakehouse.webhooks import SIGNATURE_HEADER, TIMESTAMP_HEADER, valid_signature
from mps.api.errors import ApiError


class ReplayGuard:
    """Signatures seen within the tolerance window."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def first_time(self, key: str, now: float) -> bool:
        """Record ``key``; return False if it was already seen within the window."""
        with self._lock:
            if len(self._seen) > 10_000:
                self._seen = {k: t for k, t in self._seen.items() if now - t < self.window_s}
            seen = self._seen.get(key)
            if seen is not None and now - seen < self.window_s:
                return False
            self._seen[key] = now
            return True


def verify_webhook(
    secrets: dict[str, str], name: str, headers, body: bytes, now: float, tolerance_s: float, guard: ReplayGuard
) -> None:
    """Raise ApiError unless ``body`` carries a fresh, valid, first-seen signature for webhook ``name``."""
    secret = secrets.get(name) or secrets.get("*")
    if not secret:
        raise ApiError(404, "unknown_webhook", f"no webhook named {name!r} is configured")
    ts_raw, sig = headers.get(TIMESTAMP_HEADER), headers.get(SIGNATURE_HEADER)
    if not ts_raw or not sig:
        raise ApiError(401, "unsigned_webhook", f"missing {TIMESTAMP_HEADER} or {SIGNATURE_HEADER} header")
    try:
        ts = int(ts_raw)
    except ValueError:
        raise ApiError(401, "bad_timestamp", f"{TIMESTAMP_HEADER} must be unix seconds") from None
    if abs(now - ts) > tolerance_s:
        raise ApiError(401, "stale_webhook", f"timestamp outside the {tolerance_s:.0f}s tolerance")
    if not valid_signature(secret, ts, body, sig):
        raise ApiError(401, "bad_signature", "signature does not match the body")
    if not guard.first_time(sig, now):
        raise ApiError(409, "replayed_webhook", "this signature was already accepted")


def wall_seconds() -> float:
    return time.time()
