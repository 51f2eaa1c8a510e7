"""Repeated kills in one run: still exactly one gold.signals row per update, no false dead letters,
no process left behind.

Found by the soak (benchmarks/faults.py), which lost signals only once kills repeated:
- after a NATS restart the scorer's pull stream could wait out the 30 s pull expiry, and JetStream,
  having lost consumer ack state to ``kill -9``, redelivered acked updates with a delivery count of
  1, which the scorer dead-lettered as duplicates (serving-rs/src/source.rs);
- a scorer killed with updates in flight left them unacked behind later ones: lost
  (the second test; a starting scorer now re-reads them from the stream first).
The first test also restarts the sink while NATS is down (it must wait for NATS). The supervisor
is off here, so a component that dies is not silently restarted.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time

import nats
import pytest
from streaming_harness import gold_keys, publish_js, run, update, wait_for_rows
from streaming_pipeline import Pipeline, wait_until

from feature_store.contract import STREAMING
from mps.scorer_process import scorer_binary

SYMBOLS = ("A:US", "B:US", "C:US")
WAVE = 30


@pytest.fixture(scope="module")
def scorer_bin():
    return scorer_binary()


def wave(i: int):
    return [update(s, seq) for seq in range(i * WAVE, (i + 1) * WAVE) for s in SYMBOLS]


async def dead_letters(url: str) -> int:
    nc = await nats.connect(url)
    info = await nc.jetstream().stream_info(STREAMING.stream_of("deadletter"))
    await nc.close()
    return info.state.messages


def three_waves(tmp_path, fault, timeout: float, inspect=None) -> tuple[Pipeline, dict]:
    """Wave 0 stored, then ``fault(pipe)`` (which publishes wave 1 its own way), then wave 2; assert
    that gold.signals holds every update of the three waves exactly once. ``inspect(pipe)`` runs
    before the pipeline closes; its dict is returned with the closed pipeline."""
    pipe = Pipeline(tmp_path).start(supervise=False)
    try:
        run(publish_js(pipe.url, wave(0)))
        assert wait_until(lambda: len(gold_keys(pipe.lake_root)) >= len(wave(0)), 90)
        fault(pipe)
        run(publish_js(pipe.url, wave(2)))
        expected = sorted((u.symbol_id, u.seq) for i in range(3) for u in wave(i))
        keys = wait_for_rows(pipe.lake_root, len(expected), timeout=timeout)
        seen = inspect(pipe) if inspect is not None else {}
    finally:
        pipe.close()
    assert sorted(keys) == expected, f"lost {len(set(expected) - set(keys))}, extra {len(keys) - len(set(keys))}"
    return pipe, seen


def test_two_nats_kills_and_a_sink_restarted_during_the_outage(tmp_path, scorer_bin):
    def fault(pipe: Pipeline) -> None:
        pipe.kill("nats")
        pipe.kill("sink")
        pipe.restart("sink")  # comes up while NATS is down: it must wait for NATS, not exit
        assert not wait_until(lambda: not pipe.alive("sink"), 3), "the sink exited while NATS was down"
        pipe.restart("nats")
        run(publish_js(pipe.url, wave(1)))
        pipe.kill("nats")  # the second kill, with wave 1 possibly still in flight
        pipe.restart("nats")

    def inspect(pipe: Pipeline) -> dict:
        alive = {v: pipe.alive(v) for v in ("nats", "scorer", "sink")}
        return {"alive": alive, "dead": asyncio.run(dead_letters(pipe.url))}

    # A liveness bound, not a speed figure: the stalled pull stream waited out its 30 s expiry.
    pipe, seen = three_waves(tmp_path, fault, timeout=20, inspect=inspect)
    assert seen["alive"] == {"nats": True, "scorer": True, "sink": True}
    assert seen["dead"] == 0, "redeliveries after a NATS restart are not duplicates"
    assert pipe.leftovers() == []


async def limit_signals(url: str, max_msgs: int | None) -> int:
    """Cap SIGNALS at ``max_msgs`` (None: at what it holds now, so new Signals are refused; -1: no cap)."""
    from nats.js.api import DiscardPolicy

    nc = await nats.connect(url)
    js = nc.jetstream()
    info = await js.stream_info(STREAMING.stream_of("signals"))
    config = info.config
    config.max_msgs = info.state.messages if max_msgs is None else max_msgs
    config.discard = DiscardPolicy.NEW
    await js.update_stream(config)
    await nc.close()
    return info.state.messages


def test_scorer_killed_with_unacked_updates_scores_them_first_after_restart(tmp_path, scorer_bin):
    """Updates the killed scorer held unacked are scored by the next one before later updates.

    SIGNALS is made to refuse publishes, so the scorer keeps wave 1 in flight (scored, Signals
    not acked, inputs not acked); it is killed, SIGNALS reopened, a new scorer started and wave 2
    published. Before, wave 1 came back only after the ack wait, behind wave 2 (late), or was
    covered by wave 2's ack-all: lost.
    """

    def fault(pipe: Pipeline) -> None:
        asyncio.run(limit_signals(pipe.url, None))  # full at what it holds: new Signals refused
        run(publish_js(pipe.url, wave(1)))
        time.sleep(2.0)  # the scorer takes wave 1 and retries its Signals
        pipe.kill("scorer")
        asyncio.run(limit_signals(pipe.url, -1))
        pipe.restart("scorer")

    three_waves(tmp_path, fault, timeout=60)


def test_scorer_frozen_past_its_heartbeats_loses_nothing(tmp_path, scorer_bin):
    """A scorer stalled past two idle heartbeats (a loaded machine, a long GC pause elsewhere on
    the box) drops its pull stream on waking, with the batch the server delivered meanwhile in the
    stream's buffer. That batch counts as delivered, and the ack of the next update covered it
    (ack-all): CI lost a whole wave this way after a NATS restart. The rebuilt stream re-reads it.
    """

    def fault(pipe: Pipeline) -> None:
        assert pipe.scorer is not None and pipe.scorer.proc is not None
        pid = pipe.scorer.proc.pid
        os.kill(pid, signal.SIGSTOP)
        try:
            run(publish_js(pipe.url, wave(1)))  # delivered into the frozen scorer's open pull request
            time.sleep(2.5)  # five missed heartbeats, inside the request's 5 s expiry
        finally:
            os.kill(pid, signal.SIGCONT)
        time.sleep(1.0)

    three_waves(tmp_path, fault, timeout=20)
