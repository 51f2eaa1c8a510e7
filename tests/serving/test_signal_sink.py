"""feature_store.signal_sink appends published Signals to gold.signals in batches, once each."""

from __future__ import annotations

import asyncio
import json
import time

import nats
import polars as pl
import pytest
from scorer_helpers import MODEL_V1, make_update

from backtest.reference_scorer import ReferenceScorer
from feature_store.contract import STREAMING
from feature_store.messages import FeaturePublisher, deadletter_subject, ensure_streams, signals_subject
from feature_store.signal_sink import run_sink, write_signals
from lakehouse.tables import GOLD_SIGNALS
from mps.scorer_process import ScorerProcess


def _reference_signals(n_rounds: int = 4) -> list[dict]:
    scorer = ReferenceScorer(MODEL_V1)
    out = []
    for seq in range(n_rounds):
        for s in ("AAPL:US", "MSFT:US"):
            sig = scorer.score([make_update(s, seq)], time.time_ns())[0]
            out.append({**sig, "published_at": time.time_ns()})
    return out


async def _sink_until(nats_url: str, lake, n: int, timeout: float = 30.0, **sink_kw):
    stop = asyncio.Event()
    task = asyncio.create_task(run_sink(nats_url, lake, stop, **{"batch_size": 5, "wait_s": 0.2, **sink_kw}))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        if lake.exists(GOLD_SIGNALS) and lake.read(GOLD_SIGNALS, columns=["seq"]).height >= n:
            break
    stop.set()
    return await task


async def _publish(nats_url: str, signals: list[dict]) -> None:
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await ensure_streams(js, [STREAMING.stream_of("signals")])
    for sig in signals:
        await js.publish(signals_subject(sig["tf"], sig["symbol_id"]), json.dumps(sig).encode())
    await nc.close()


def test_sink_writes_batches_and_skips_redelivered_rows(nats_server, lake):
    signals = _reference_signals()

    async def scenario():
        await _publish(nats_server.url, signals)
        nc = await nats.connect(nats_server.url)
        await nc.jetstream().publish(signals_subject("1s", "BAD:US"), b"not json")
        await nc.close()
        return await _sink_until(nats_server.url, lake, len(signals))

    stats = asyncio.run(scenario())
    assert (stats.received, stats.written, stats.malformed) == (len(signals) + 1, len(signals), 1)
    assert stats.batches >= 2, "batch_size=5 must split the stream into several appends"
    table = lake.read(GOLD_SIGNALS).sort(["symbol_id", "seq"])
    assert table.height == len(signals)
    assert table.schema["ts"] == pl.Datetime("ns", "UTC")
    first = json.loads(table.row(0, named=True)["payload"])
    assert first["symbol_id"] == "AAPL:US" and first["seq"] == 0
    assert table.get_column("size").to_list() == [
        s["size"] for s in sorted(signals, key=lambda s: (s["symbol_id"], s["seq"]))
    ]
    # A redelivered batch (crash between write and ack) adds nothing.
    assert write_signals(lake, signals[:3], [json.dumps(s) for s in signals[:3]]) == (0, 3)
    assert lake.read(GOLD_SIGNALS).height == len(signals)


def test_sink_compacts_the_partitions_it_writes_and_keeps_every_row(nats_server, lake):
    signals = _reference_signals(15)

    async def scenario():
        await _publish(nats_server.url, signals)
        return await _sink_until(nats_server.url, lake, len(signals), batch_size=2, compact_every=4)

    stats = asyncio.run(scenario())
    files = len(lake.delta(GOLD_SIGNALS).file_uris())
    assert stats.batches >= len(signals) // 2 and stats.compactions >= 3 and stats.compacted_files >= 12
    # after the last compaction: its one file, plus at most compact_every - 1 appends since
    assert files <= 4, f"{files} files after {stats.batches} commits: compaction must keep them few"
    table = lake.read(GOLD_SIGNALS)
    keys = sorted(zip(table["symbol_id"], table["seq"], strict=True))
    assert keys == sorted((s["symbol_id"], s["seq"]) for s in signals), "compaction must keep every row once"


def test_sink_trims_the_signals_it_has_stored(nats_server, lake):
    signals = _reference_signals(10)
    stream = STREAMING.stream_of("signals")

    async def scenario():
        await _publish(nats_server.url, signals)
        stop = asyncio.Event()
        task = asyncio.create_task(run_sink(nats_server.url, lake, stop, batch_size=5, wait_s=0.1, trim_every_s=0.1))
        nc = await nats.connect(nats_server.url)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            held = (await nc.jetstream().stream_info(stream)).state
            if held.messages == 0 and lake.exists(GOLD_SIGNALS):
                break
        stop.set()
        await task
        await nc.close()
        return held

    held = asyncio.run(scenario())
    assert lake.read(GOLD_SIGNALS).height == len(signals)
    assert (held.messages, held.first_seq) == (0, len(signals) + 1), "SIGNALS holds only what is not yet stored"


def test_sink_gathers_a_trickle_into_few_commits(nats_server, lake):
    """Signals arriving one by one are written in lingered batches, not a commit per fetch."""
    signals = [{**s, "seq": s["seq"] + 100 * k} for k in range(3) for s in _reference_signals(10)]  # 60, unique

    async def trickle():
        nc = await nats.connect(nats_server.url)
        js = nc.jetstream()
        for sig in signals:  # 60 signals over ~1.5 s, each on its own
            await js.publish(signals_subject(sig["tf"], sig["symbol_id"]), json.dumps(sig).encode())
            await asyncio.sleep(0.025)
        await nc.close()

    async def scenario():
        nc = await nats.connect(nats_server.url)
        await ensure_streams(nc.jetstream(), [STREAMING.stream_of("signals")])
        await nc.close()
        feed = asyncio.create_task(trickle())
        stats = await _sink_until(nats_server.url, lake, len(signals), batch_size=1000, wait_s=0.5, linger_s=0.6)
        await feed
        return stats

    stats = asyncio.run(scenario())
    assert stats.written == len(signals) == lake.read(GOLD_SIGNALS).height
    # ~1.5 s of arrivals at one commit per 0.6 s linger: 3-4 commits; a commit per fetch made dozens
    assert stats.batches <= 6, f"{stats.batches} commits for {len(signals)} signals: the sink must linger"


@pytest.mark.slow
def test_scorer_signals_land_in_gold(nats_server, scorer_bin, lake, tmp_path):
    updates = [make_update(s, q) for q in range(6) for s in ("A:US", "B:US", "C:US")]

    async def scenario():
        nc = await nats.connect(nats_server.url)
        pub = FeaturePublisher(nc)
        for u in updates:
            await pub.publish(u)
        await nc.close()
        return await _sink_until(nats_server.url, lake, len(updates))

    with ScorerProcess(nats_server.url, model=MODEL_V1, mode="core", log_path=tmp_path / "scorer.log"):
        stats = asyncio.run(scenario())
    assert stats.written == len(updates)
    gold = lake.read(GOLD_SIGNALS)
    assert sorted(zip(gold["symbol_id"], gold["seq"], strict=False)) == sorted((u.symbol_id, u.seq) for u in updates)
    assert set(gold["model_version"]) == {"1"} and set(gold["horizon"]) == {60}


def test_invalid_signals_go_to_dead_letters_once_and_the_sink_keeps_going(nats_server, lake):
    good = _reference_signals(1)
    missing = {k: v for k, v in good[0].items() if k != "size"}  # valid JSON, a field short
    out_of_range = {**good[1], "prob_up": 2.0}
    bad = [json.dumps(missing).encode(), json.dumps(out_of_range).encode(), b"{not json"]

    async def scenario():
        nc = await nats.connect(nats_server.url)
        js = nc.jetstream()
        await ensure_streams(js, [STREAMING.stream_of("signals"), STREAMING.stream_of("deadletter")])
        for payload in bad:
            await js.publish(signals_subject("1s", "BAD:US"), payload)
        for sig in good:
            await js.publish(signals_subject(sig["tf"], sig["symbol_id"]), json.dumps(sig).encode())
        await nc.close()
        first = await _sink_until(nats_server.url, lake, len(good))
        second = await _sink_until(nats_server.url, lake, len(good) + 1, timeout=1.5)  # nothing comes back
        nc = await nats.connect(nats_server.url)
        sub = await nc.jetstream().subscribe(
            STREAMING.pattern("deadletter"), stream=STREAMING.stream_of("deadletter"), ordered_consumer=True
        )
        dead = [await sub.next_msg(timeout=5) for _ in bad]
        await nc.close()
        return first, second, dead

    first, second, dead = asyncio.run(scenario())
    assert (first.received, first.written, first.malformed) == (len(bad) + len(good), len(good), len(bad))
    assert second.received == 0, "refused signals are acked, not redelivered forever"
    reasons = [m.headers["Mps-Reason"] for m in dead]
    assert "missing 'size'" in reasons[0] and "prob_up" in reasons[1] and reasons[2].startswith("malformed_json")
    assert [m.subject for m in dead] == [deadletter_subject(signals_subject("1s", "BAD:US"))] * 3
    assert lake.read(GOLD_SIGNALS).height == len(good)
