"""Soak: ticks -> streaming featurizer -> scorer -> signal sink while NATS, the scorer, the sink (and the featurizer) die.

    .venv/bin/python benchmarks/faults.py [--seconds 1800] [--rate 2000] [--symbols 200] [--kill-every 30]
        [--featurizer-cmd "mps featurizer --nats-url {nats} --publish-jetstream"] [--victims nats,scorer,sink]
        [--input updates]   # the old path: FeatureUpdates published straight to the scorer

The processes are the fault tests' (tests/faults/streaming_pipeline.py: NATS from the wheel with
one store across restarts, the featurizer command, the release scorer on a JetStream durable,
``python -m feature_store.signal_sink``), started, killed, restarted and supervised the same way.

``--input ticks`` (the default): a simulated market of ``--symbols`` random walks
(tests/faults/featurizer_path.Market, ``--tick-rate`` trades and quotes per symbol-second, event
times in a regular session) is published to md.trades.* / md.quotes.* at ``--rate / --symbols``
market seconds per wall second, so the featurizer owes ``--rate`` FeatureUpdates per second (one
per symbol per second). Each market second goes out through JetStream with ``Nats-Msg-Id``,
re-sent in order until acked. The featurizer command is a parameter (``{nats}`` is the server URL):
by default ``mps featurizer``, which runs the Rust mps-featurizer when its release binary is built
(the Python one otherwise). The scorer serves a tick_v2 contract model
(a small PriceTransformer fitted on random windows and exported through training/onnx_export.py
into the run's directory, or ``--model``). What the featurizer must publish comes from the same
ticks through an in-process ``TickFeaturizer``, a clean run with no NATS and no faults.
``--input updates``: FeatureUpdates published at ``--rate`` straight to the scorer (tick_tiny).

A chaos loop SIGKILLs each of ``--victims`` once per round, in random order, at random moments
(exponential gaps, mean ``--kill-every`` s) while the load runs (from ``--warmup`` s on), leaving
``--quiet-tail`` seconds of load after the last kill, and restarts it after ``--down-s``. Then it drains and prints: input in,
updates owed and published, signals stored, lost (owed updates with no stored signal), duplicated
(extra rows per update), dead letters by reason, processes that exited on their own, and per kill
the restart time and the recovery time (kill -> the first signal of an update created after the
kill; for a sink, -> the next commit to gold.signals), beside the fault-free baseline of the same
run (market second published -> its update's signal, median and p99). ``--sinks 2`` (the default)
runs two sink replicas on one durable and kills the first; ``--sinks 1`` measures a lone sink,
whose recovery is its cold start. Target: 0 lost, 0 duplicated, recovery < 2 s. Prints figures;
asserts nothing. Every process it started is gone when it exits, however it exits.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shlex
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests" / "faults")]

import orjson  # noqa: E402
from featurizer_path import (  # noqa: E402
    MODEL_NAME,
    CleanFeaturizer,
    Market,
    export_tick_v2,
    publish_in_order,
    replay_sizing,
)
from streaming_harness import update  # noqa: E402
from streaming_pipeline import MPS_FEATURIZER, Pipeline, publish_acked  # noqa: E402

from feature_store.contract import STREAMING  # noqa: E402
from feature_store.messages import CORE_STREAMS, ensure_streams  # noqa: E402
from feature_store.streaming import market_data as md  # noqa: E402
from feature_store.streaming.service import ensure_stream  # noqa: E402
from lakehouse.storage import Lake  # noqa: E402
from lakehouse.tables import GOLD_SIGNALS  # noqa: E402


class Soak:
    def __init__(self, args, work: Path) -> None:
        self.args, self.work = args, work
        sink_args = ("--durable", "soak-sink", "--batch-size", str(args.sink_batch))
        self.ticks = args.input == "ticks"
        self.market = Market(args.symbols, args.tick_rate, args.seed)
        kw: dict = {"sink_args": sink_args, "sinks": args.sinks}
        if self.ticks:
            model = Path(args.model) if args.model else export_tick_v2(work)
            kw.update(model=model, scorer_kw={"model_name": MODEL_NAME, "sizing": replay_sizing(work)})
            kw["featurizer"] = tuple(shlex.split(args.featurizer_cmd)) if args.featurizer_cmd else MPS_FEATURIZER
        self.pipe = Pipeline(work, **kw)
        self.acked: set[tuple[str, int]] = set()  # updates owed: acked (updates) or from the clean featurizer (ticks)
        self.ticks_in = 0
        self.features_published = -1
        self.streams_held: dict[str, int] = {}  # messages each stream holds after the drain (bounded streams)
        self.retried = 0
        self.kills: list[dict] = []
        self.stop = threading.Event()
        self.load_started = 0.0
        self.drained_s = 0.0  # load end -> every owed signal stored (or the drain deadline)
        self.lag = 0.0  # how far behind the input the latest signal was (s): the pipeline's backlog
        self.published_at: dict[int, float] = {}  # market second (ns) -> wall time its ticks were acked
        self.latency: dict[int, float] = {}  # update ts -> publish of the next second -> its first signal
        self.feature_latency: dict[int, float] = {}  # update ts -> publish of the next second -> first update

    # ---- chaos -------------------------------------------------------------------------------
    def chaos(self, rng: random.Random) -> None:
        last_kill_by = self.load_started + self.args.seconds - self.args.quiet_tail
        victims: list[str] = []
        if self.stop.wait(self.args.warmup):  # first-use costs (calendars, imports) are not a fault
            return
        while not self.stop.wait(rng.expovariate(1.0 / self.args.kill_every)):
            if time.monotonic() > last_kill_by:
                return
            if not victims:  # each round kills every component once, in a random order
                victims = rng.sample(self.args.victims, len(self.args.victims))
            victim = victims.pop()
            commits = self._commits()
            self.pipe.kill(victim)  # recovery counts from the moment the process is gone
            ns = self.market.now_ns() if self.ticks else time.time_ns()  # updates from here on are "after"
            kill = {"victim": victim, "at": time.monotonic(), "ns": ns, "commits": commits, "lag_s": self.lag}
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

    async def load_ticks(self) -> None:
        """Publish the market one second at a time at ``rate / symbols`` market seconds per wall second."""
        import nats

        nc = await nats.connect(self.pipe.url, max_reconnect_attempts=-1, reconnect_time_wait=0.05, error_cb=_quiet)
        js = nc.jetstream()
        await ensure_stream(js, md.MD_STREAM)
        await ensure_streams(js, CORE_STREAMS)
        signals = await nc.subscribe("signals.v1.>", cb=self._on_signal, pending_msgs_limit=1_000_000)
        features = await nc.subscribe("features.v1.>", cb=self._on_feature, pending_msgs_limit=1_000_000)
        clean = CleanFeaturizer()
        speed = self.args.rate / self.args.symbols  # market seconds per wall second
        self.load_started = start = time.monotonic()
        threading.Thread(target=self.chaos, args=(random.Random(self.args.seed),), daemon=True).start()
        k = 0
        while time.monotonic() - start < self.args.seconds:
            second = self.market.now_ns()
            events = self.market.next_second()
            self.retried += await publish_in_order(js, [(sub, pay, mid) for _, _, sub, pay, mid in events])
            self.published_at[second] = time.monotonic()
            self.ticks_in += len(events)
            clean.feed(events)
            k += 1
            await asyncio.sleep(max(0.0, start + k / speed - time.monotonic()))
        self.load_seconds = time.monotonic() - start
        self.acked = clean.expected()
        await self._drain()
        info = await js.stream_info(md.FEATURES_STREAM)
        self.features_published = info.state.last_seq  # stored ever: the stream itself is trimmed
        checkpoints = f"OBJ_{STREAMING.featurizer_state_bucket}"  # the featurizer's state, in chunks
        for name in (md.MD_STREAM, md.FEATURES_STREAM, STREAMING.stream_of("signals"), checkpoints):
            with contextlib.suppress(Exception):  # no checkpoint bucket: the featurizer stores none
                self.streams_held[name] = (await js.stream_info(name)).state.messages
        await signals.unsubscribe()
        await features.unsubscribe()
        await nc.close()

    async def _on_feature(self, msg) -> None:
        ts = orjson.loads(msg.data)["ts"]
        if ts not in self.feature_latency and ts + 1_000_000_000 in self.published_at:
            self.feature_latency[ts] = time.monotonic() - self.published_at[ts + 1_000_000_000]

    async def _on_signal(self, msg) -> None:
        now = time.monotonic()
        try:
            ts = orjson.loads(msg.data)["ts"]
        except (orjson.JSONDecodeError, KeyError):
            return
        if not self.ticks:
            self.lag = time.time() - ts / 1e9
        elif ts + 1_000_000_000 in self.published_at:
            self.lag = now - self.published_at[ts + 1_000_000_000]  # its row closed with that second
            self.latency.setdefault(ts, self.lag)
        for k in self.kills:
            if k["victim"].startswith("sink"):
                continue
            if now - k["at"] >= k.get("restart_s", float("inf")):  # the first signal once it runs again
                k.setdefault("resumed_s", now - k["at"])
            if "recovery_s" not in k and ts >= k["ns"]:  # the first of an update created after the kill
                k["recovery_s"] = now - k["at"]

    async def _drain(self) -> None:
        start = time.monotonic()
        deadline = start + self.args.drain_s
        while time.monotonic() < deadline and self._stored_rows() < len(self.acked):
            await asyncio.sleep(1.0)
        self.drained_s = time.monotonic() - start
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
            asyncio.run(self.load_ticks() if self.ticks else self.load())
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
            "down_s": self.args.down_s,
            "input": self.args.input,
            "featurizer": " ".join(self.pipe.featurizer_cmd or ()),
            "ticks_in": self.ticks_in,
            "features_published": self.features_published,
            "streams_held": self.streams_held,
            "updates_in": len(self.acked),
            "rate": round(len(self.acked) / self.load_seconds, 1),
            "baseline_latency_s": _quantiles(list(self.latency.values())),
            "featurizer_latency_s": _quantiles(list(self.feature_latency.values())),
            "load_average": os.getloadavg(),
            "cpu_s": _cpu(),
            "publish_retries": self.retried,
            "signals_stored": stored.height,
            "drain_s": round(self.drained_s, 1),
            "signal_files": len(lake.delta(GOLD_SIGNALS).file_uris()) if lake.exists(GOLD_SIGNALS) else 0,
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
                    "resumed_s": round(k["resumed_s"], 3) if "resumed_s" in k else None,
                    "recovery_s": round(k["recovery_s"], 3) if "recovery_s" in k else None,
                    "lag_at_kill_s": round(k["lag_s"], 3),
                }
                for k in self.kills
            ],
        }


async def _quiet(exc: Exception) -> None:
    """nats-py prints a traceback per failed reconnect by default; the kills make many."""


def _quantiles(xs: list[float]) -> dict:
    if not xs:
        return {}
    xs = sorted(xs)
    return {q: round(xs[min(len(xs) - 1, int(p * len(xs)))], 3) for q, p in (("p50", 0.5), ("p99", 0.99), ("max", 1.0))}


def _cpu() -> dict:
    """CPU seconds of this process and of its children (the pipeline's processes that exited)."""
    t = os.times()
    return {"soak": round(t.user + t.system, 1), "children": round(t.children_user + t.children_system, 1)}


def report(figures: dict) -> None:
    print(f"sink replicas     {figures['sinks']}")
    if figures["input"] == "ticks":
        print(f"featurizer        {figures['featurizer']}")
        print(f"ticks in          {figures['ticks_in']:,} (acked by MARKET_DATA)")
        print(f"updates owed      {figures['updates_in']:,} over {figures['seconds']} s ({figures['rate']:,}/s)")
        print(f"updates published {figures['features_published']:,}   (messages FEATURES stored)")
        held = ", ".join(f"{name} {n:,}" for name, n in figures["streams_held"].items())
        print(f"streams hold      {held}   (messages left after the drain: streams are trimmed when consumed)")
        print(
            f"baseline latency  {figures['baseline_latency_s']}   (s, market second acked -> first signal of its row)"
        )
        print(f"  of which        {figures['featurizer_latency_s']}   (s, market second acked -> its row's update)")
    else:
        print(f"updates in        {figures['updates_in']:,} over {figures['seconds']} s ({figures['rate']:,}/s acked)")
    print(f"publish retries   {figures['publish_retries']:,}   (tries not acked, repeated with the same Nats-Msg-Id)")
    print(
        f"signals stored    {figures['signals_stored']:,}   ({figures['drain_s']} s after the load ended;"
        f" gold.signals in {figures['signal_files']:,} files)"
    )
    tail = figures["lost"] - figures["lost_gaps"]
    print(
        f"lost              {figures['lost']:,}   (target 0): {figures['lost_gaps']:,} holes, {tail:,} tail not yet stored"
    )
    print(f"duplicated        {figures['duplicated']:,}   (target 0)")
    print(f"stored, never in  {figures['not_published']:,}")
    print(f"dead letters      {figures['deadletters'] or 'none'}")
    print(f"exited by itself  {figures['crashes'] or 'none'}; failed restarts {figures['restart_errors'] or 'none'}")
    print(f"kills             restart = kill -> running again ({figures['down_s']} s down on purpose);")
    print("                  resumed = kill -> the next signal; recovery = kill -> the first signal of an update")
    print("                  created after the kill (a sink: the next commit to gold.signals); backlog = how far")
    print("                  the signals already trailed the input when it was killed (a lagging pipeline adds it)")
    for k in figures["kills"]:
        rec = "not recovered" if k["recovery_s"] is None else f"{k['recovery_s']:.3f} s"
        resumed = "" if k["resumed_s"] is None else f"resumed {k['resumed_s']:.3f} s  "
        backlog = "" if k["victim"].startswith("sink") else f" (backlog {k['lag_at_kill_s']:.3f} s)"
        print(
            f"kill {k['victim']:10} at {k['at_s']:6.1f} s  restart {k['restart_s']:.3f} s  {resumed}"
            f"recovery {rec}{backlog}"
        )
    print(f"processes left    {figures['leftover_processes'] or 'none'}")
    print(f"load average      {figures['load_average']}   CPU s {figures['cpu_s']}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=1800.0, help="load time (default 30 minutes)")
    ap.add_argument("--rate", type=float, default=2000.0, help="updates per second")
    ap.add_argument("--symbols", type=int, default=200)
    ap.add_argument("--input", choices=("ticks", "updates"), default="ticks", help="ticks through the featurizer")
    ap.add_argument("--featurizer-cmd", default=None, help="featurizer command line, {nats} = URL (default: mps)")
    ap.add_argument("--model", default=None, help="tick_v2 contract model (default: export a small one)")
    ap.add_argument("--tick-rate", type=float, default=1.0, help="trades+quotes per symbol per market second")
    ap.add_argument("--victims", type=lambda v: v.split(","), default=["nats", "scorer", "sink"])
    ap.add_argument("--sinks", type=int, default=2, help="sink replicas on one durable (the chaos kills the first)")
    ap.add_argument("--kill-every", type=float, default=30.0, help="mean seconds between kills")
    ap.add_argument("--down-s", type=float, default=0.5, help="seconds a killed process stays down")
    ap.add_argument("--warmup", type=float, default=10.0, help="seconds of load before the first kill")
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
