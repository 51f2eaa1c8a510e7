"""kill -9 of the scorer, the sink or NATS mid-run, then restart: gold.signals holds exactly one row
per scored update (none lost, none doubled), and the scorer's /health says degraded while NATS is down.

DESIGN section 6: the scorer acks inputs only after JetStream acked their Signals (Nats-Msg-Id
dedupes a re-publish), redeliveries re-send instead of dead-lettering, the sink acks after its keyed
write. Before these fixes a NATS kill lost signals (publish without ack) and dead-lettered redeliveries.
"""

from __future__ import annotations

import time

import pytest
from streaming_harness import (
    Sink,
    gold_keys,
    health,
    kill_nats,
    kill_scorer,
    publish_js,
    run,
    scorer,
    update,
    wait_for_rows,
)

from mps.nats_server import NatsServer
from mps.scorer_process import scorer_binary

SYMBOLS = ("A:US", "B:US", "C:US")
WAVE = 40  # updates per symbol per wave


@pytest.fixture(scope="module")
def scorer_bin():
    return scorer_binary()


def wave(i: int):
    return [update(s, seq) for seq in range(i * WAVE, (i + 1) * WAVE) for s in SYMBOLS]


@pytest.mark.parametrize("victim", ["scorer", "sink", "nats"])
def test_kill_9_then_restart_keeps_exactly_one_row_per_update(victim, tmp_path, scorer_bin):
    lake_root = tmp_path / "lake"
    server = NatsServer(store_dir=tmp_path / "nats").start()
    sink = Sink(server.url, lake_root, tmp_path / "sink.log").start()
    proc = scorer(server.url, tmp_path).start()
    degraded = None
    try:
        run(publish_js(server.url, wave(0)))
        run(publish_js(server.url, wave(1)))  # in flight when the victim dies
        if victim == "scorer":
            kill_scorer(proc)
            proc = scorer(server.url, tmp_path).start()
        elif victim == "sink":
            sink.kill()
            sink = Sink(server.url, lake_root, tmp_path / "sink.log").start()
        else:
            kill_nats(server)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                degraded = health(proc.url)
                if degraded[1]["status"] == "degraded":
                    break
                time.sleep(0.1)
            server.start()
        run(publish_js(server.url, wave(2)))
        expected = sorted((u.symbol_id, u.seq) for i in range(3) for u in wave(i))
        keys = wait_for_rows(lake_root, len(expected))
        healthy = health(proc.url)
    finally:
        proc.stop()
        if sink.proc is not None and sink.proc.poll() is None:
            sink.stop()
        server.close()
    assert sorted(keys) == expected, f"lost {len(set(expected) - set(keys))}, extra {len(keys) - len(set(keys))}"
    if victim == "nats":
        assert degraded is not None and degraded[0] == 503 and degraded[1]["nats"] == "unreachable"
        assert healthy[0] == 200 and healthy[1]["status"] == "ok"
    assert gold_keys(lake_root) == keys
