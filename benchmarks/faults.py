"""Soak: replayed FeatureUpdates through scorer -> signal sink while NATS, the scorer and the sink die.

    .venv/bin/python benchmarks/faults.py [--seconds 1800] [--rate 2000] [--symbols 50] [--kill-every 30]

Publishes updates at ``--rate`` per second into JetStream (each publish retried until the stream
acks it, so every counted update is in the stream). The Rust scorer (JetStream durable consumer)
answers each with a Signal; the Python sink (``feature_store.signal_sink``) stores them in
gold.signals. Meanwhile a chaos loop kills one of NATS, the scorer or the sink with SIGKILL at
random moments (exponential gaps, mean ``--kill-every`` s) and restarts it (NATS on the same port
and store). After the run it drains, then prints: updates in, signals stored, lost (acked updates
with no stored signal), duplicated (extra rows per update), dead letters by reason, and the
recovery time of each kill (kill -> the next signal for an update published after the kill; for the
sink, -> its next commit to gold.signals). Target: 0 lost, 0 duplicated, recovery < 2 s.
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from feature_store.messages import CORE_STREAMS, FeatureUpdate, encode, ensure_streams  # noqa: E402
from lakehouse.storage import Lake  # noqa: E402
from lakehouse.tables import GOLD_SIGNALS  # noqa: E402
from mps.nats_server import NatsServer  # noqa: E402
from mps.scorer_process import ScorerProcess  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
MODEL = REPO / "contracts" / "models" / "tick_tiny" / "v1" / "tick_tiny.onnx"
BASE = (0.0, 0.0, 0.0, 0.0, 2.0, 0.1, -0.1, 5.0, 20.0, 0.2, 0.25, 5.0e7)  # plausible tick_v1 features


def update(symbol: str, seq: int) -> FeatureUpdate:
    ts = time.time_ns()
    values = (1e-4 * (((seq * 7 + len(symbol)) % 11) - 5), *BASE[1:])
    return FeatureUpdate(symbol, "1s", ts, ts + 1_000_000, "tick_v1", values, seq)


class Sink:
    """The signal sink as a child process (what `mps up` runs)."""

    def __init__(self, nats_url: str, lake: str, log: Path) -> None:
        self.args = [sys.executable, "-m", "feature_store.signal_sink", "--nats", nats_url, "--lake", lake]
        self.args += ["--durable", "soak-sink"]
        self.log, self.proc = log, None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            self.args, cwd=REPO, stdout=subprocess.PIPE, stderr=open(self.log, "ab"), text=True
        )
        line = self.proc.stdout.readline().strip()
        if line != "ready":
            raise RuntimeError(f"sink did not start: {line!r}")

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)


def _kill_popen(proc) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


class Harness:
    def __init__(self, args, work: Path) -> None:
        self.args, self.work = args, work
        self.nats = NatsServer(store_dir=work / "nats").start()
        self.scorer = ScorerProcess(
            self.nats.url, model=MODEL, mode="jetstream", durable="soak-scorer", log_path=work / "scorer.log"
        )
        self.lake_root = str(work / "lake")
        self.sink = Sink(self.nats.url, self.lake_root, work / "sink.log")
        self.acked: dict[tuple[str, int], int] = {}  # (symbol, seq) -> ts
        self.published_at: list[tuple[float, int]] = []
        self.kills: list[dict] = []
        self.last_signal = 0.0
        self.signal_seen_after: dict[int, float] = {}
        self.stop = threading.Event()

    # ---- chaos -------------------------------------------------------------------------------
    def chaos(self, rng: random.Random) -> None:
        while not self.stop.wait(rng.expovariate(1.0 / self.args.kill_every)):
            victim = rng.choice(["nats", "scorer", "sink"])
            kill = {"victim": victim, "at": time.monotonic(), "ts_at_kill": time.time_ns(), "commits": self._commits()}
            self.kills.append(kill)
            if victim == "nats":
                _kill_popen(self.nats._proc)
                self.nats._proc = None
                time.sleep(self.args.down_s)
                self.nats.start()
            elif victim == "scorer":
                _kill_popen(self.scorer.proc)
                self.scorer.proc = None
                time.sleep(self.args.down_s)
                self.scorer.start()
            else:
                self.sink.kill()
                time.sleep(self.args.down_s)
                self.sink.start()
            kill["restarted"] = time.monotonic() - kill["at"]

    def _commits(self) -> int:
        log = Path(self.lake_root) / "gold" / "signals" / "_delta_log"
        return len(list(log.glob("*.json"))) if log.is_dir() else 0

    # ---- load --------------------------------------------------------------------------------
    async def publish(self, seconds: float) -> None:
        import nats

        nc = await nats.connect(self.nats.url, max_reconnect_attempts=-1, reconnect_time_wait=0.1)
        js = nc.jetstream()
        await ensure_streams(js, CORE_STREAMS)
        signals = await nc.subscribe("signals.v1.>", cb=self._on_signal, pending_msgs_limit=1_000_000)
        self.chaos_thread.start()  # only once the streams exist and the load can start
        symbols = [f"S{i:03d}:US" for i in range(self.args.symbols)]
        seqs = dict.fromkeys(symbols, -1)
        tick, per_tick = 0.01, max(1, round(self.args.rate * 0.01))
        start = time.monotonic()
        i = 0
        while time.monotonic() - start < seconds:
            batch = []
            for _ in range(per_tick):
                sym = symbols[i % len(symbols)]
                seqs[sym] += 1
                batch.append(update(sym, seqs[sym]))
                i += 1
            await asyncio.gather(*(self._publish_until_acked(js, u) for u in batch))
            lag = start + i / self.args.rate - time.monotonic()
            await asyncio.sleep(max(0.0, min(lag, tick)))
        self.publish_seconds = time.monotonic() - start
        await self._drain()
        await signals.unsubscribe()
        await nc.close()

    async def _publish_until_acked(self, js, u: FeatureUpdate) -> None:
        payload = encode(u)
        while True:
            try:
                await js.publish(u.subject, payload, timeout=2.0)
                self.acked[(u.symbol_id, u.seq)] = u.ts
                self.published_at.append((time.monotonic(), u.ts))
                return
            except Exception:  # NATS down or JetStream not ready: the same update again
                await asyncio.sleep(0.05)

    async def _on_signal(self, msg) -> None:
        now = time.monotonic()
        self.last_signal = now
        try:
            ts = json.loads(msg.data)["ts"]
        except (ValueError, KeyError):
            return
        for k in list(self.kills):  # first signal for an update published after the kill
            if "recovered" not in k and k["victim"] != "sink" and ts > k["ts_at_kill"]:
                k["recovered"] = now - k["at"]

    async def _drain(self) -> None:
        deadline = time.monotonic() + self.args.drain_s
        stable, last = 0, -1
        while time.monotonic() < deadline and stable < 6:
            await asyncio.sleep(1.0)
            n = self._stored_rows()
            stable = stable + 1 if n == last else 0
            last = n

    def _stored_rows(self) -> int:
        try:
            info = Lake(self.lake_root).info(GOLD_SIGNALS)
        except Exception:
            return -1
        return info.rows if info else 0

    # ---- run ---------------------------------------------------------------------------------
    def run(self) -> dict:
        self.scorer.start()
        self.sink.start()
        rng = random.Random(self.args.seed)
        self.chaos_thread = threading.Thread(target=self.chaos, args=(rng,), daemon=True)
        watcher = threading.Thread(target=self._watch_sink_recovery, daemon=True)
        watcher.start()
        try:
            asyncio.run(self.publish(self.args.seconds))
        finally:
            self.stop.set()
            if self.chaos_thread.is_alive():
                self.chaos_thread.join(timeout=60)
            for stop in (self.sink.stop, self.scorer.stop):
                try:
                    stop()
                except Exception as exc:  # report, keep shutting down
                    print(f"stop failed: {exc}", file=sys.stderr)
        deadletters = asyncio.run(self._deadletters())
        self.nats.close()
        return self._figures(deadletters)

    def _watch_sink_recovery(self) -> None:
        """Mark sink recoveries, and restart a scorer or sink that exited on its own (as a supervisor would)."""
        self.crashes: Counter = Counter()
        while not self.stop.wait(0.05):
            for name, proc, start in (("sink", self.sink.proc, self.sink.start), ("scorer", self.scorer.proc, None)):
                if proc is not None and proc.poll() is not None and not self.stop.is_set():
                    self.crashes[name] += 1
                    try:
                        if start is not None:
                            start()
                        else:
                            self.scorer.proc = None
                            self.scorer.start()
                    except Exception as exc:  # NATS may be down: try again on the next round
                        print(f"restart of {name} failed: {exc}", file=sys.stderr)
            for k in list(self.kills):
                if k["victim"] == "sink" and "recovered" not in k and self._commits() > k["commits"]:
                    k["recovered"] = time.monotonic() - k["at"]

    async def _deadletters(self) -> Counter:
        import nats

        nc = await nats.connect(self.nats.url)
        js = nc.jetstream()
        reasons: Counter = Counter()
        try:
            sub = await js.pull_subscribe("deadletter.>", stream="DEADLETTER")
            while True:
                try:
                    msgs = await sub.fetch(1000, timeout=1.0)
                except Exception:
                    break
                for m in msgs:
                    reasons[(m.headers or {}).get("Mps-Reason", "unknown")] += 1
                    await m.ack()
        except Exception as exc:
            reasons[f"(could not read dead letters: {exc})"] += 0
        await nc.close()
        return reasons

    def _figures(self, deadletters: Counter) -> dict:
        import polars as pl

        stored = Lake(self.lake_root).read(GOLD_SIGNALS, columns=["symbol_id", "seq", "ts"])
        per_update = stored.group_by("symbol_id", "seq").len()
        acked = pl.DataFrame(
            {"symbol_id": [k[0] for k in self.acked], "seq": [k[1] for k in self.acked]},
            schema={"symbol_id": pl.String, "seq": pl.Int64},
        )
        lost = acked.join(per_update, on=["symbol_id", "seq"], how="anti").height
        return {
            "seconds": round(self.publish_seconds, 1),
            "updates_in": len(self.acked),
            "rate": round(len(self.acked) / self.publish_seconds, 1),
            "signals_stored": stored.height,
            "lost": lost,
            "duplicated": int(per_update.filter(pl.col("len") > 1).select(pl.col("len") - 1).sum().item() or 0),
            "deadletters": dict(deadletters),
            "crashes": dict(getattr(self, "crashes", {})),
            "kills": [
                {"victim": k["victim"], "recovery_s": round(k["recovered"], 3) if "recovered" in k else None}
                for k in self.kills
            ],
        }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=1800.0, help="publishing time (default 30 minutes)")
    ap.add_argument("--rate", type=float, default=2000.0, help="updates per second")
    ap.add_argument("--symbols", type=int, default=50)
    ap.add_argument("--kill-every", type=float, default=30.0, help="mean seconds between kills")
    ap.add_argument("--down-s", type=float, default=0.5, help="seconds a killed process stays down")
    ap.add_argument("--drain-s", type=float, default=90.0, help="max seconds to wait for the tail to be stored")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--json", default=None, help="also write the figures here")
    ap.add_argument("--workdir", default=None, help="keep the lake and logs here (default: a temp dir)")
    args = ap.parse_args()
    if args.workdir:  # kept: logs of the scorer, the sink and NATS for a post-mortem
        Path(args.workdir).mkdir(parents=True, exist_ok=True)
        figures = Harness(args, Path(args.workdir)).run()
    else:
        with tempfile.TemporaryDirectory(prefix="mps-soak-") as tmp:
            figures = Harness(args, Path(tmp)).run()
    print(f"updates in        {figures['updates_in']:,} over {figures['seconds']} s ({figures['rate']:,}/s)")
    print(f"signals stored    {figures['signals_stored']:,}")
    print(f"lost              {figures['lost']:,}   (target 0)")
    print(f"duplicated        {figures['duplicated']:,}   (target 0)")
    print(f"dead letters      {figures['deadletters'] or 'none'}")
    print(f"crashed (not killed), restarted: {figures['crashes'] or 'none'}")
    for k in figures["kills"]:
        rec = "not recovered" if k["recovery_s"] is None else f"{k['recovery_s']:.3f} s"
        print(f"kill {k['victim']:7} recovery {rec}   (target < 2 s)")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
