"""Helpers shared by the scorer tests (fixture models, updates, HTTP, collectors)."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from pathlib import Path

from feature_store.messages import FeatureUpdate

CONTRACTS = Path(__file__).resolve().parents[2] / "contracts"
MODEL_V1 = CONTRACTS / "models" / "tick_tiny" / "v1" / "tick_tiny.onnx"
MODEL_V2 = CONTRACTS / "models" / "tick_tiny" / "v2" / "tick_tiny.onnx"
BASE_VALUES = (0.0, 0.0, 0.0, 0.0, 2.0, 0.1, -0.1, 5.0, 20.0, 0.2, 0.25, 5.0e7)


def make_update(symbol: str, seq: int, ts: int | None = None, bump: float = 0.0) -> FeatureUpdate:
    """A plausible tick FeatureUpdate; ``bump`` shifts the 1 s return so windows differ."""
    ts = time.time_ns() if ts is None else ts
    values = list(BASE_VALUES)
    values[0] = 1e-4 * (((seq * 7 + len(symbol)) % 11) - 5) + bump
    return FeatureUpdate(symbol, "1s", ts, ts + 1_000_000, "tick_v1", tuple(values), seq)


def http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def metric(text: str, name: str) -> float:
    """Value of one Prometheus sample line (exact name including labels)."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    raise KeyError(name)


class Collector:
    """Subscribe to a subject and keep decoded messages (and headers) as they arrive."""

    def __init__(self) -> None:
        self.items: list = []

    async def start(self, nc, subject: str, raw: bool = False):
        async def cb(msg):
            self.items.append((msg.subject, msg.headers, msg.data) if raw else json.loads(msg.data))

        return await nc.subscribe(subject, cb=cb, pending_msgs_limit=1_000_000)

    async def wait_for(self, n: int, timeout: float = 30.0) -> list:
        deadline = time.monotonic() + timeout
        while len(self.items) < n and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        return self.items
