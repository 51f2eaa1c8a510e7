"""Python reference scorer: the same ONNX through onnxruntime, then backtest/signal.py.

It mirrors the Rust scorer's engine (per-symbol ring of the last L updates, warm-up padding with
the oldest update, one signal per update) so that parity tests and the end-to-end benchmark's
Python baseline use the same semantics. It is not the production path: serving-rs is.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from backtest.signal import compute_signal
from backtest.sizing import RiskState, SizingConfig
from core.errors import ContractError
from feature_store.contract import STREAMING
from feature_store.messages import FeatureUpdate, decode, signals_subject
from feature_store.model_contract import ModelMetadata, read_metadata


class Ring:
    """The last L feature vectors of one symbol (preallocated)."""

    def __init__(self, lookback: int, n_features: int) -> None:
        self.data = np.zeros((lookback, n_features), dtype=np.float32)
        self.head = 0
        self.count = 0

    def push(self, values) -> None:
        self.data[self.head] = values
        self.head = (self.head + 1) % len(self.data)
        self.count += 1

    @property
    def warm(self) -> bool:
        return self.count >= len(self.data)

    def last(self) -> np.ndarray:
        return self.data[(self.head - 1) % len(self.data)]

    def window(self) -> np.ndarray:
        """(L, F) oldest first; before warm-up the missing steps repeat the oldest update."""
        lookback = len(self.data)
        have = min(self.count, lookback)
        order = [(self.head - have + i) % lookback for i in range(have)]
        rows = self.data[order]
        if have < lookback:
            rows = np.concatenate([np.repeat(rows[:1], lookback - have, axis=0), rows])
        return rows


@dataclass
class _Series:
    ring: Ring
    last_seq: int = -1
    last_ts: int = -(2**63)


class ReferenceScorer:
    """Score FeatureUpdates with onnxruntime and the Python signal/sizing reference."""

    def __init__(self, onnx_path: str | Path, sizing: SizingConfig | None = None, threads: int = 1) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
        self.meta: ModelMetadata = read_metadata(onnx_path)
        self.sizing = sizing or SizingConfig.load()
        self.risk = RiskState(nav=self.sizing.nav)
        self.series: dict[tuple[str, str], _Series] = {}
        self.rejected = 0
        for batch in (1, 64):  # first calls allocate; do it before serving, as the Rust golden check does
            self.predict(np.zeros((batch, self.meta.lookback, len(self.meta.feature_names)), dtype=np.float32))

    def predict(self, x: np.ndarray) -> np.ndarray:
        """(B, L, F) -> (B, H, K) probabilities."""
        return self.session.run(["probs"], {"features": np.ascontiguousarray(x, dtype=np.float32)})[0]

    def ingest(self, update: FeatureUpdate) -> _Series:
        """Validate an update against the model and per-symbol order, then push it into its ring."""
        if update.feature_set != self.meta.feature_set:
            raise ContractError(f"feature_set {update.feature_set} != {self.meta.feature_set}")
        if len(update.values) != len(self.meta.feature_names):
            raise ContractError(f"{len(update.values)} values, model needs {len(self.meta.feature_names)}")
        key = (update.tf, update.symbol_id)
        s = self.series.get(key)
        if s is None:
            s = self.series[key] = _Series(Ring(self.meta.lookback, len(self.meta.feature_names)))
        elif update.seq <= s.last_seq or update.ts < s.last_ts:
            raise ContractError(f"{update.symbol_id}: seq {update.seq} is a duplicate or late")
        s.ring.push(update.values)
        s.last_seq, s.last_ts = update.seq, update.ts
        return s

    def score(self, updates: list[FeatureUpdate], now_ns: int) -> list[dict]:
        """Ingest a micro-batch (one update per series); return one signal per accepted update."""
        accepted, series = [], []
        for u in updates:
            try:
                series.append(self.ingest(u))
                accepted.append(u)
            except ContractError:
                self.rejected += 1
        updates = accepted
        if not series:
            return []
        probs = self.predict(np.stack([s.ring.window() for s in series]))
        return [
            compute_signal(
                probs[i],
                self.meta,
                self.sizing,
                symbol_id=u.symbol_id,
                tf=u.tf,
                ts=u.ts,
                known_at=u.known_at,
                seq=u.seq,
                last_features=s.ring.last(),
                warm=s.ring.warm,
                risk=self.risk,
                now_ns=now_ns,
            )
            for i, (u, s) in enumerate(zip(updates, series, strict=False))
        ]


async def serve_core(
    nats_url: str, onnx_path: str | Path, stop, *, max_batch: int = 64, subject: str | None = None, ready=None
) -> dict:
    """Run the reference scorer on a core NATS subscription until ``stop`` (an asyncio.Event) is set.

    Micro-batches whatever has arrived since the last model call, like the Rust loop; sets ``ready``
    once subscribed. Returns counts.
    """
    import asyncio

    import nats

    scorer = ReferenceScorer(onnx_path)
    nc = await nats.connect(nats_url)
    queue: asyncio.Queue = asyncio.Queue()

    async def on_msg(msg):
        queue.put_nowait(msg)

    sub = await nc.subscribe(subject or STREAMING.pattern("features"), cb=on_msg, pending_msgs_limit=1_000_000)
    await nc.flush()
    if ready is not None:
        ready.set()
    counts = {"updates": 0, "signals": 0, "rejected": 0}
    try:
        while not stop.is_set():
            try:
                first = await asyncio.wait_for(queue.get(), timeout=0.1)
            except TimeoutError:
                continue
            msgs = [first]
            while not queue.empty() and len(msgs) < max_batch:
                msgs.append(queue.get_nowait())
            batch: list[FeatureUpdate] = []
            seen: set[tuple[str, str]] = set()
            for msg in msgs:
                counts["updates"] += 1
                try:
                    u = decode(msg.data)
                except ContractError:
                    counts["rejected"] += 1
                    continue
                if (u.tf, u.symbol_id) in seen:  # one update per series per batch
                    await _publish(nc, scorer, batch, counts)
                    batch, seen = [], set()
                batch.append(u)
                seen.add((u.tf, u.symbol_id))
            await _publish(nc, scorer, batch, counts)
    finally:
        await sub.unsubscribe()
        await nc.drain()
    return counts


async def _publish(nc, scorer: ReferenceScorer, batch: list[FeatureUpdate], counts: dict) -> None:
    before = scorer.rejected
    signals = scorer.score(batch, time.time_ns())
    counts["rejected"] += scorer.rejected - before
    for sig in signals:
        sig["published_at"] = time.time_ns()
        await nc.publish(signals_subject(sig["tf"], sig["symbol_id"]), json.dumps(sig).encode())
        counts["signals"] += 1


def main() -> None:
    """Run the reference scorer on core NATS until SIGTERM (the benchmark's Python baseline)."""
    import argparse
    import asyncio
    import signal

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--nats", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--max-batch", type=int, default=64)
    args = parser.parse_args()

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)
        ready = asyncio.Event()
        task = asyncio.create_task(serve_core(args.nats, args.model, stop, max_batch=args.max_batch, ready=ready))
        await ready.wait()
        print("ready", flush=True)
        counts = await task
        print(json.dumps(counts), flush=True)

    asyncio.run(run())


if __name__ == "__main__":
    main()
