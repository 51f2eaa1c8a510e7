"""gold.signals is keyed as DESIGN section 6 says: (model version, symbol, tf, ts, seq), plus horizon.

A redelivered Signal never adds a row; the same update scored by two model versions stores both;
two updates of one series stamped with the same ts both store. Before, the key was (symbol, tf,
model, ts, horizon): the second model version's Signal and the second same-ts update were
dropped as duplicates.
"""

from __future__ import annotations

import asyncio
import json
import time

import nats
from streaming_harness import MODEL_V1, MODEL_V2, update

from backtest.reference_scorer import ReferenceScorer
from feature_store.contract import STREAMING
from feature_store.messages import ensure_streams, signals_subject
from feature_store.signal_sink import run_sink, write_signals
from lakehouse.tables import GOLD_SIGNALS
from mps.nats_server import NatsServer

TS = 1_790_000_000_000_000_000


def signal(model, seq: int, ts: int = TS) -> dict:
    """The Signal ``model`` publishes for update (A:US, 1s, ts, seq), as the scorer would."""
    sig = ReferenceScorer(model).score([update("A:US", seq, ts=ts)], ts + 2_000_000)[0]
    return {**sig, "published_at": ts + 3_000_000}


def rows(lake) -> list[tuple]:
    frame = lake.read(GOLD_SIGNALS, columns=["model_version", "symbol_id", "seq"]).sort("model_version", "seq")
    return frame.rows()


def test_keys_are_designs():
    assert {"model", "model_version", "symbol_id", "tf", "ts", "seq"} <= set(GOLD_SIGNALS.keys)
    assert set(GOLD_SIGNALS.keys) - {"model", "model_version", "symbol_id", "tf", "ts", "seq"} == {"horizon"}


def test_redelivery_adds_nothing_and_model_versions_and_same_ts_updates_all_store(lake):
    v1, v2 = signal(MODEL_V1, 0), signal(MODEL_V2, 0)
    assert (v1["model"], v1["model_version"]) != (v2["model"], v2["model_version"])
    same_ts = signal(MODEL_V1, 1)  # the next update of the series, stamped with the same ts
    assert write_signals(lake, [v1], [json.dumps(v1)]) == (1, 0)
    assert write_signals(lake, [v1], [json.dumps(v1)]) == (0, 1), "a redelivered Signal adds no row"
    assert write_signals(lake, [v2, v1], [json.dumps(v2), json.dumps(v1)]) == (1, 1)
    assert write_signals(lake, [same_ts], [json.dumps(same_ts)]) == (1, 0)
    assert rows(lake) == [
        (v1["model_version"], "A:US", 0),
        (v1["model_version"], "A:US", 1),
        (v2["model_version"], "A:US", 0),
    ]


def test_running_sink_stores_each_version_once_under_redelivery(tmp_path, lake):
    v1, v2 = signal(MODEL_V1, 5), signal(MODEL_V2, 5)
    published = [v1, v1, v2, v2, v1]  # the scorer re-sent each (distinct JetStream messages, no Msg-Id)

    async def scenario(url: str):
        nc = await nats.connect(url)
        js = nc.jetstream()
        await ensure_streams(js, [STREAMING.stream_of("signals")])
        for sig in published:
            await js.publish(signals_subject(sig["tf"], sig["symbol_id"]), json.dumps(sig).encode())
        await nc.close()
        stop = asyncio.Event()
        task = asyncio.create_task(run_sink(url, lake, stop, batch_size=2, wait_s=0.2))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            if lake.exists(GOLD_SIGNALS) and lake.read(GOLD_SIGNALS, columns=["seq"]).height >= 2:
                await asyncio.sleep(2.0)  # let the later (duplicate) batches land too
                break
        stop.set()
        return await task

    with NatsServer(store_dir=tmp_path / "nats") as server:
        stats = asyncio.run(scenario(server.url))
    assert (stats.received, stats.written, stats.duplicates) == (5, 2, 3)
    assert rows(lake) == [(v1["model_version"], "A:US", 5), (v2["model_version"], "A:US", 5)]
