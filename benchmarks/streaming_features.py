"""Streaming featurizer benchmark: 500 symbols, ticks in -> FeatureUpdates out through NATS, one core.

    nice .venv/bin/python benchmarks/streaming_features.py [--symbols 500] [--seconds 10] [--rate 20] [--no-python]

A simulated market (``--rate`` events per symbol per second, 30% trades, 70% one-sided NBBO
updates, ms stamps) is published to MARKET_DATA first; then the featurizer (this process, one
thread) consumes it as fast as it can and publishes one FeatureUpdate per symbol per second.

Figures:
- per-event processing time (decode, state update, publishing the rows the event closed): p50/p99/p99.9/max;
- sustained events/s = events / (last - first message) while the stream is never empty (wall clock),
  and events per CPU-second of this process (the nats-server runs in its own process);
- both consumers: the JetStream ordered consumer (replayable, the default) and a core subscription;
- both featurizers on the same events in the same run: the Python one (this process, nats-py) and the
  Rust one (``serving-rs`` ``mps-featurizer``, a child process on one thread; its per-event times and
  the process CPU between its first and last event come from its ``--stats`` file);
- baselines in the same run: the in-process featurizer without NATS (the compute alone), and the
  batch path recomputed per event (``tick_features`` over the symbol's trailing 600 s, as a system
  without incremental state would) on a sample of events.
Targets (issue 9): p99 < 250 us per event, >= 50,000 events/s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl

warnings.simplefilter("ignore")

OPEN = datetime(2026, 1, 5, 14, 30, tzinfo=UTC)


def market(symbols: int, seconds: int, rate: float, seed: int = 1) -> pl.DataFrame:
    """An ``ordered_events`` frame of a simulated market (numpy, vectorised)."""
    rng = np.random.default_rng(seed)
    n = rng.poisson(rate * seconds, symbols)
    sym = np.repeat(np.arange(symbols), n)
    t0 = int(OPEN.timestamp()) * 10**9 + 10**9
    t = t0 + rng.integers(0, seconds * 1000, sym.size) * 1_000_000
    order = np.lexsort((sym, t))
    sym, t = sym[order], t[order]
    is_trade = rng.random(sym.size) < 0.3
    base = 20 + sym * 0.5
    step = rng.choice([-0.01, 0.0, 0.0, 0.01], sym.size)
    drift = np.zeros(sym.size)
    for s in range(symbols):  # a random walk per symbol
        idx = np.flatnonzero(sym == s)
        drift[idx] = np.cumsum(step[idx])
    mid = np.round(base + drift, 2)
    side = rng.random(sym.size) < 0.5
    names = np.array([f"S{s:04d}:US" for s in range(symbols)])
    return pl.DataFrame(
        {
            "kind": np.where(is_trade, "trade", "quote"),
            "symbol_id": names[sym],
            "t": t,
            "price": np.where(is_trade, mid + rng.choice([-0.005, 0.005], sym.size), np.nan),
            "size": np.where(is_trade, rng.choice([100.0, 200.0, 500.0, 20_000.0], sym.size), np.nan),
            "bid": np.where(~is_trade & side, mid - 0.005, np.nan),
            "bid_size": np.where(~is_trade & side, 300.0, np.nan),
            "ask": np.where(~is_trade & ~side, mid + 0.005, np.nan),
            "ask_size": np.where(~is_trade & ~side, 300.0, np.nan),
            "exchange": "Q",
            "seq": np.arange(sym.size),
        }
    ).with_columns(pl.col("price", "size", "bid", "bid_size", "ask", "ask_size").fill_nan(None))


def pct(lat_ns: list[int]) -> str:
    a = np.asarray(lat_ns) / 1e3
    return (
        f"p50 {np.percentile(a, 50):7.1f} us  p99 {np.percentile(a, 99):7.1f} us  "
        f"p99.9 {np.percentile(a, 99.9):8.1f} us  max {a.max():9.1f} us"
    )


async def through_nats(url: str, events: pl.DataFrame, consume: str) -> dict:
    import nats

    from feature_store.streaming.replay import replay
    from feature_store.streaming.service import FeaturizerConfig, StreamingFeaturizer
    from feature_store.streaming.state import TickFeaturizer

    nc = await nats.connect(url, pending_size=1 << 26)
    featurizer = StreamingFeaturizer(nc, FeaturizerConfig(consume=consume), TickFeaturizer())
    featurizer.featurizer.sessions.find("XNYS", int(OPEN.timestamp()) * 10**9)  # load the calendar first
    featurizer.record_latencies()
    stamps: list[float] = []
    original = featurizer._apply

    def timed(subject, data):
        if not stamps:
            stamps.append(time.perf_counter())
            stamps.append(time.process_time())
        original(subject, data)

    featurizer._apply = timed
    if consume == "jetstream":
        wall = time.perf_counter()
        sent = await replay(nc, events)
        pub_rate = sent / (time.perf_counter() - wall)
        task = asyncio.create_task(featurizer.run(idle_exit_s=2.0))
    else:  # a live feed: the featurizer subscribes first, then the ticks arrive
        task = asyncio.create_task(featurizer.run(idle_exit_s=2.0))
        await asyncio.sleep(0.5)
        wall = time.perf_counter()
        sent = await replay(nc, events)
        pub_rate = sent / (time.perf_counter() - wall)
    counts = await task
    end_wall, end_cpu = time.perf_counter() - 2.0, time.process_time()
    await nc.close()
    lat = featurizer.latencies_ns
    wall_s = end_wall - stamps[0]
    return {
        "counts": counts,
        "lat": lat,
        "cpu": featurizer.cpu_ns,
        "events_per_s": len(lat) / max(wall_s, 1e-9),
        "events_per_cpu_s": len(lat) / max(end_cpu - stamps[1], 1e-9),
        "publish_rate": pub_rate,
    }


async def null_consumer(url: str, events: pl.DataFrame) -> float:
    """Upper bound of any Python featurizer on nats-py: the same consumer that only counts, per CPU-second."""
    import nats
    from nats.js.api import ConsumerConfig

    from feature_store.streaming import market_data as md
    from feature_store.streaming.replay import replay

    nc = await nats.connect(url, pending_size=1 << 26)
    await replay(nc, events)
    js, seen, done = nc.jetstream(), [0], asyncio.Event()

    async def on_msg(msg) -> None:
        seen[0] += 1
        if seen[0] == events.height:
            done.set()

    cpu0 = time.process_time()
    sub = await js.subscribe(
        "", stream=md.MD_STREAM, ordered_consumer=True, config=ConsumerConfig(filter_subjects=md.md_patterns()),
        cb=on_msg, pending_msgs_limit=1_000_000,
    )  # fmt: skip
    await done.wait()
    cpu = time.process_time() - cpu0
    await sub.unsubscribe()
    await nc.close()
    return events.height / cpu


async def rust_through_nats(url: str, events: pl.DataFrame, consume: str, stats: Path, latencies: bool = True) -> dict:
    """The Rust featurizer on the same market: JetStream pre-filled (max rate) or a live core feed.

    ``latencies`` times every event (two thread-clock reads each, ~1 us of CPU); without it only the
    process CPU from the first event to the end of the input is read (the throughput figure).
    """
    import nats

    from feature_store.streaming.replay import replay
    from mps.featurizer_process import FeaturizerProcess, write_sessions

    year = OPEN.year
    nc = await nats.connect(url, pending_size=1 << 26)
    sessions = write_sessions(year, year)
    proc = FeaturizerProcess(url, sessions, consume=consume, idle_exit=2.0, stats=stats, latencies=latencies)
    if consume == "jetstream":
        wall = time.perf_counter()
        sent = await replay(nc, events)
        pub_rate = sent / (time.perf_counter() - wall)
        proc.start()
    else:
        proc.start()
        wall = time.perf_counter()
        sent = await replay(nc, events)
        pub_rate = sent / (time.perf_counter() - wall)
    counts = await asyncio.to_thread(proc.wait, 300.0)
    await nc.close()
    report = json.loads(stats.read_text())
    n = counts["events"]
    return {
        "counts": counts,
        "lat": report["latencies_ns"],
        "cpu": report["cpu_ns"],
        "events_per_s": n / max(report["span_wall_ns"] / 1e9, 1e-9),
        "events_per_cpu_s": n / max(report["span_cpu_ns"] / 1e9, 1e-9),
        "publish_rate": pub_rate,
    }


def report_line(label: str, r: dict, who: str) -> str:
    c = r["counts"]
    return (
        f"{label} {r['events_per_s']:10,.0f} events/s   {pct(r['lat'])}\n"
        f"    per-event CPU time (thread clock, no preemption): {pct(r['cpu'])}\n"
        f"    {r['events_per_cpu_s']:,.0f} events per CPU-second of the {who} process; "
        f"{c['published']:,} FeatureUpdates, {c['bad']} bad, {c['late']} late; "
        f"replay published {r['publish_rate']:,.0f} msg/s"
    )


def in_process(events: pl.DataFrame) -> tuple[float, list[int]]:
    from feature_store.streaming.state import TickFeaturizer

    f = TickFeaturizer()
    f.sessions.find("XNYS", int(OPEN.timestamp()) * 10**9)
    rows = events.select("kind", "symbol_id", "t", "price", "size", "bid", "bid_size", "ask", "ask_size").rows()
    lat, clock = [], time.perf_counter_ns
    t0, cpu0 = time.perf_counter(), time.process_time()
    for kind, sym, t, price, size, bid, bs, ask, az in rows:
        a = clock()
        if kind == "trade":
            f.on_trade(sym, t, price, size)
        else:
            f.on_quote(sym, t, bid, bs, ask, az)
        f.out.clear()
        lat.append(clock() - a)
    print(f"    in-process: {len(rows) / (time.process_time() - cpu0):,.0f} events per CPU-second")
    return len(rows) / (time.perf_counter() - t0), lat


def batch_per_event(events: pl.DataFrame, sample: int) -> list[int]:
    """The baseline: recompute the batch features over the symbol's trailing 600 s at each event."""
    from feature_store.tick.batch import tick_features

    trades = events.filter(pl.col("kind") == "trade").select(
        "symbol_id", pl.col("t").cast(pl.Datetime("ns", "UTC")).alias("ts"), "price", "size", "seq"
    )
    quotes = events.filter(pl.col("kind") == "quote").select(
        "symbol_id", pl.col("t").cast(pl.Datetime("ns", "UTC")).alias("ts"), "bid", "bid_size", "ask", "ask_size",
        "exchange", "seq",
    )  # fmt: skip
    rng = np.random.default_rng(0)
    picks = rng.integers(events.height // 2, events.height, sample)
    lat = []
    for i in picks:
        sym, t = events["symbol_id"][int(i)], events["t"][int(i)]
        lo = t - 600 * 10**9
        window = (pl.col("symbol_id") == sym) & pl.col("ts").dt.epoch("ns").is_between(lo, t)
        a = time.perf_counter_ns()
        tick_features(trades.filter(window), quotes.filter(window)).tail(1)
        lat.append(time.perf_counter_ns() - a)
    return lat


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--symbols", type=int, default=500)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--rate", type=float, default=20.0, help="events per symbol per market second")
    ap.add_argument("--baseline-sample", type=int, default=100)
    ap.add_argument("--no-python", action="store_true", help="skip the Python featurizer through NATS")
    args = ap.parse_args()

    from mps.nats_server import NatsServer

    events = market(args.symbols, args.seconds, args.rate)
    print(f"{events.height:,} events ({args.symbols} symbols x {args.seconds} s x ~{args.rate:g}/s), tick_v2")
    rate, lat = in_process(events)
    print(f"in-process featurizer (no NATS)   {rate:10,.0f} events/s   {pct(lat)}")
    from mps.featurizer_process import featurizer_binary

    featurizer_binary(build=True)
    for consume in ("jetstream", "core"):
        if not args.no_python:
            with NatsServer() as server:
                r = asyncio.run(through_nats(server.url, events, consume))
            print(report_line(f"Python through NATS ({consume:9s})", r, "featurizer"))
        with NatsServer() as server, tempfile.TemporaryDirectory() as tmp:
            r = asyncio.run(rust_through_nats(server.url, events, consume, Path(tmp) / "stats.json"))
        print(report_line(f"Rust through NATS   ({consume:9s})", r, "mps-featurizer"))
        if consume == "jetstream":  # again without per-event timing: the throughput alone
            with NatsServer() as server, tempfile.TemporaryDirectory() as tmp:
                r = asyncio.run(rust_through_nats(server.url, events, consume, Path(tmp) / "stats.json", False))
            print(
                f"Rust through NATS   (jetstream, untimed) {r['events_per_s']:10,.0f} events/s wall, "
                f"{r['events_per_cpu_s']:,.0f} events per CPU-second of the mps-featurizer process"
            )
    with NatsServer() as server:
        null = asyncio.run(null_consumer(server.url, events))
    print(f"nats-py JetStream consumer that only counts: {null:,.0f} events per CPU-second (client ceiling)")
    base = batch_per_event(events, args.baseline_sample)
    print(f"baseline: batch recompute per event  {1e9 / np.mean(base):8,.0f} events/s   {pct(base)}")
    print("targets: p99 < 250 us per event, >= 50,000 events/s")
    print(f"load average {os.getloadavg()[0]:.1f} / {os.getloadavg()[1]:.1f} / {os.getloadavg()[2]:.1f} (1/5/15 min)")


if __name__ == "__main__":
    main()
