"""Per-client rate limits (token buckets, in process) and the request body size limit."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from mps.api.errors import ApiError, error_response


class TokenBuckets:
    """One token bucket per client: ``rate`` tokens a second, at most ``burst`` saved up."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self.clock = rate, burst, clock
        self._state: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, client: str, cost: float = 1.0) -> None:
        """Spend ``cost`` tokens of ``client``'s bucket; raise ApiError(429) with Retry-After if empty."""
        now = self.clock()
        with self._lock:
            tokens, last = self._state.get(client, (float(self.burst), now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens < cost:
                self._state[client] = (tokens, now)
                wait = math.ceil((cost - tokens) / self.rate)
                raise ApiError(429, "rate_limited", f"rate limit {self.rate:g}/s exceeded", {"Retry-After": str(wait)})
            self._state[client] = (tokens - cost, now)


class BodyLimit:
    """ASGI middleware: refuse request bodies over ``max_bytes`` with 413 (declared or streamed)."""

    def __init__(self, app, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                return await self._refuse(scope, receive, send)
        seen = 0

        async def counted():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, counted, send)
        except _TooLarge:
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope, receive, send):
        response = error_response(413, f"request body over {self.max_bytes} bytes")
        await response(scope, receive, send)


class _TooLarge(Exception):
    pass


__all__ = ["ApiError", "BodyLimit", "TokenBuckets"]
