"""What the routes talk to: the lake, a clock, NATS, the Prefect server, the scoring model.

One object per app, built by ``create_app``; tests pass their own (a temporary lake, a fixed clock,
a NATS server from the wheel). Connections open lazily and close on shutdown.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from core.errors import ServiceError
from lakehouse.storage import Lake
from mps.api.events import PrefectEvents
from mps.api.settings import ApiSettings

if TYPE_CHECKING:
    from nats.aio.client import Client as NatsClient


def wall_clock() -> datetime:
    return datetime.now(UTC)


@dataclass
class Services:
    """Shared dependencies of the routes."""

    settings: ApiSettings
    lake: Lake
    clock: Callable[[], datetime] = wall_clock
    events: PrefectEvents | None = None
    tracer: object | None = None
    _nats: NatsClient | None = field(default=None, repr=False)
    _nats_lock: asyncio.Lock | None = field(default=None, repr=False)
    _scorers: dict = field(default_factory=dict, repr=False)
    feature_cache: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.events is None:
            self.events = PrefectEvents(self.settings.prefect_api_url)
        if self.tracer is None:
            from mps.api.observability import tracer_for

            self.tracer = tracer_for()

    async def nats(self):
        """A connected nats-py client (opened on first use); ServiceError if NATS is unreachable."""
        if self._nats is not None and self._nats.is_connected:
            return self._nats
        if not self.settings.nats_url:
            raise ServiceError("no NATS URL configured (profile nats.url or MPS_NATS_URL)")
        if self._nats_lock is None:
            self._nats_lock = asyncio.Lock()
        async with self._nats_lock:
            if self._nats is None or not self._nats.is_connected:
                import nats

                try:
                    self._nats = await nats.connect(
                        self.settings.nats_url, connect_timeout=2, max_reconnect_attempts=2, allow_reconnect=True
                    )
                except Exception as exc:  # nats-py raises several unrelated types here
                    raise ServiceError(f"NATS at {self.settings.nats_url} unreachable: {type(exc).__name__}") from None
        return self._nats

    def scorer(self, onnx_path: str):
        """The Python onnxruntime scorer for ``onnx_path`` (kept per path: the session loads once)."""
        if onnx_path not in self._scorers:
            from backtest.reference_scorer import ReferenceScorer

            self._scorers = {onnx_path: ReferenceScorer(onnx_path)}
        return self._scorers[onnx_path]

    async def close(self) -> None:
        if self._nats is not None:
            try:
                await self._nats.drain()
            except Exception:  # closing anyway
                pass
            self._nats = None
        if self.events is not None:
            await self.events.close()
