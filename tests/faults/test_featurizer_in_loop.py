"""Ticks -> streaming featurizer -> scorer -> sink with one NATS kill and one scorer kill: every update
the featurizer must publish (the same ticks through an in-process ``TickFeaturizer``) has exactly one
gold.signals row, and nothing is dead-lettered.

The featurizer is ``mps featurizer --publish-jetstream`` as a child process (the harness takes any
featurizer command). A NATS kill with updates in flight used to lose them twice over: published on
core NATS they vanished with the server, and the featurizer's ordered consumer waited out its 5 s
heartbeat check (and nats-py's 2 s reconnect wait, 60 times) before reading market data again. With
a backlog in the featurizer when NATS dies, a re-send of the lost publishes landed behind rows sent
after the restart, and the scorer refused them as late (dead letters): one in flight per symbol.
The model is a tick_v2 contract model built as a small ONNX graph (``finish_export``), since the
torch export alone takes longer than this test may.
"""

from __future__ import annotations

from collections import Counter

import nats
import pytest
from featurizer_path import MODEL_NAME, CleanFeaturizer, Market, export_tick_v2_graph, publish_in_order, replay_sizing
from streaming_harness import gold_keys, run, wait_for_rows
from streaming_pipeline import MPS_FEATURIZER, Pipeline, wait_until

from feature_store.contract import STREAMING
from feature_store.messages import CORE_STREAMS, ensure_streams
from feature_store.streaming import market_data as md
from feature_store.streaming.service import ensure_stream
from mps.scorer_process import scorer_binary

SYMBOLS, SECONDS_PER_WAVE = 12, 8


@pytest.fixture(scope="module")
def scorer_bin():
    return scorer_binary()


async def publish(url: str, events) -> None:
    nc = await nats.connect(url, max_reconnect_attempts=-1, reconnect_time_wait=0.05)
    js = nc.jetstream()
    await ensure_stream(js, md.MD_STREAM)
    await ensure_streams(js, CORE_STREAMS)
    await publish_in_order(js, [(subject, payload, msg_id) for _, _, subject, payload, msg_id in events])
    await nc.close()


async def stream_counts(url: str) -> dict[str, tuple[int, int]]:
    """Per stream: (messages ever stored, messages held now: trimmed streams hold what is unconsumed)."""
    nc = await nats.connect(url)
    js = nc.jetstream()
    out = {}
    for name in (md.MD_STREAM, md.FEATURES_STREAM, STREAMING.stream_of("deadletter")):
        state = (await js.stream_info(name)).state
        out[name] = (state.last_seq, state.messages)
    await nc.close()
    return out


def test_featurizer_in_the_loop_survives_a_nats_kill_and_a_scorer_kill(tmp_path, scorer_bin):
    model = export_tick_v2_graph(tmp_path)
    scorer_kw = {"model_name": MODEL_NAME, "sizing": replay_sizing(tmp_path)}
    market, clean = Market(SYMBOLS, rate=1.5, seed=3), CleanFeaturizer()

    def wave(seconds: int = SECONDS_PER_WAVE):
        events = [e for _ in range(seconds) for e in market.next_second()]
        clean.feed(events)
        return events

    pipe = Pipeline(tmp_path, model=model, scorer_kw=scorer_kw, featurizer=MPS_FEATURIZER).start(supervise=False)
    try:
        assert pipe.wait_sinks_ready(120)
        run(publish(pipe.url, wave()))
        assert wait_until(lambda: len(gold_keys(pipe.lake_root)) > 0, 90), "no signal through the featurizer"
        run(publish(pipe.url, wave(50 * SECONDS_PER_WAVE)))  # a backlog: rows keep coming out after the restart
        pipe.kill("nats")  # wave 2 still on its way through the featurizer and the scorer
        pipe.restart("nats")
        run(publish(pipe.url, wave()))
        pipe.kill("scorer")
        pipe.restart("scorer")
        run(publish(pipe.url, wave()))
        expected = clean.expected()
        keys = wait_for_rows(pipe.lake_root, len(expected), timeout=90)
        # the scorer trims FEATURES each second, the featurizer MARKET_DATA after each checkpoint (2 s)
        wait_until(lambda: max(n for _, n in run(stream_counts(pipe.url)).values()) < 100, 10)
        counts = run(stream_counts(pipe.url))
        alive = {v: pipe.alive(v) for v in pipe.victims}
    finally:
        pipe.close()
    assert pipe.leftovers() == []
    doubled = {k: n for k, n in Counter(keys).items() if n > 1}
    assert doubled == {}, f"{len(doubled)} updates stored twice"
    missing = expected - set(keys)
    assert not missing, f"{len(missing)} of {len(expected)} updates lost, e.g. {sorted(missing)[:5]}"
    assert set(keys) == expected
    assert counts[md.FEATURES_STREAM][0] == len(expected), counts  # each update published once
    assert counts[STREAMING.stream_of("deadletter")] == (0, 0), counts
    # bounded streams: what is consumed is gone (the open second's ticks wait for the next checkpoint)
    assert counts[md.FEATURES_STREAM][1] == 0 and counts[md.MD_STREAM][1] < 100, counts
    assert all(alive.values()), alive
