"""The Rust featurizer (``mps-featurizer``) on real BAC ticks through NATS: equal to batch, and to Python.

The same 45 minutes of 2013-10-07 as ``test_parity_nats`` are replayed onto md.trades/md.quotes; the
Rust binary consumes MARKET_DATA and publishes to FEATURES; every stored value is compared with the
batch gold rows (``tick_features``) within each feature's registered tolerance, the worst feature
reported, and with the Python featurizer fed the same events (a port with the same floating-point
operations). A second run kills the binary (SIGKILL) half-way through the day and restarts it (the
restarted one publishing through JetStream acks); a
third checks the heartbeat closes a quiet symbol's seconds on the wall clock.
"""

from __future__ import annotations

import asyncio
import json
import time

import nats
import numpy as np
import pytest
from parity_helpers import as_frame, frame, read_features, stream, worst

from feature_store.streaming import market_data as md
from feature_store.streaming.replay import replay
from feature_store.tick.batch import tick_features
from feature_store.tick.definitions import FEATURE_NAMES, FEATURE_SET
from feature_store.tick.events import ordered_events
from mps.featurizer_process import FeaturizerProcess, featurizer_binary, write_sessions

pytestmark = pytest.mark.slow
NS = 10**9


@pytest.fixture(scope="module")
def binary():
    path = featurizer_binary(build=True)  # builds serving-rs once if the release binary is missing
    return path


@pytest.fixture(scope="module")
def sessions_2013(tmp_path_factory):
    return write_sessions(2013, 2013, path=tmp_path_factory.mktemp("sessions") / "xnys_2013.json")


@pytest.fixture(scope="module")
def bac_batch(bac_ticks):
    trades, quotes = bac_ticks
    return ordered_events(trades, quotes), tick_features(trades, quotes)


def test_rust_featurizer_on_a_replayed_day_equals_batch_and_python(
    binary, bac_ticks, bac_batch, sessions_2013, nats_server, tmp_path
):
    events, batch = bac_batch

    async def scenario():
        nc = await nats.connect(nats_server.url)
        sent = await replay(nc, events)
        with FeaturizerProcess(nats_server.url, sessions_2013, idle_exit=1.0, log_path=tmp_path / "f.log") as proc:
            counts = proc.wait(timeout=180)
        stored = await read_features(nc)
        await nc.close()
        return sent, counts, stored

    sent, counts, stored = asyncio.run(scenario())
    assert sent == events.height and counts["events"] == sent and counts["ended"] == "idle"
    assert counts["bad"] == 0 and counts["late"] == 0 and counts["uncovered"] == 0
    assert counts["published"] == batch.height == len(stored)
    assert {u.feature_set for u in stored} == {FEATURE_SET} and all(u.known_at == u.ts for u in stored)
    assert all(u.seq == u.ts // NS for u in stored)
    rust = frame(stored)
    ratio, name, errors = worst(rust, batch)
    print(f"\nRust featurizer, BAC {batch.height} rows through NATS: worst feature {name} error {errors[name]:.3g}")
    assert ratio <= 1.0, f"worst feature {name}: error {errors[name]:.3g} exceeds its tolerance"

    trades, quotes = bac_ticks
    python = as_frame(stream(trades, quotes).out).sort("symbol_id", "ts")
    rust = rust.sort("symbol_id", "ts")
    assert rust.select("symbol_id", "ts").equals(python.select("symbol_id", "ts"))
    diffs = {n: float(np.max(np.abs(rust[n].to_numpy() - python[n].to_numpy()))) for n in FEATURE_NAMES}
    worst_py = max(diffs, key=lambda n: diffs[n])
    print(f"Rust vs the Python featurizer: largest difference {diffs[worst_py]:.3g} ({worst_py})")
    assert diffs[worst_py] == 0.0, f"{worst_py} differs from the Python featurizer by {diffs[worst_py]:.3g}"


@pytest.mark.parametrize("checkpoints", [True, False], ids=["from-checkpoint", "from-session-open"])
def test_rust_featurizer_killed_half_way_resumes_without_gaps_or_duplicates(
    checkpoints, binary, bac_batch, sessions_2013, nats_server, tmp_path
):
    """With checkpoints (the default) the restart restores the state stored after the first half
    and MARKET_DATA is trimmed below it; without, it replays the session from its open."""
    events, batch = bac_batch
    half = events.height // 2
    every = 0.5 if checkpoints else 0.0

    async def stored_count(js) -> int:
        return (await js.stream_info(md.FEATURES_STREAM)).state.messages

    async def scenario():
        nc = await nats.connect(nats_server.url)
        js = nc.jetstream()
        await replay(nc, events.head(half))
        first = FeaturizerProcess(
            nats_server.url, sessions_2013, checkpoint_every=every, log_path=tmp_path / "first.log"
        ).start()
        seen, still = -1, 0
        while still < 5:  # until FEATURES stops growing: the first half is consumed (and checkpointed)
            await asyncio.sleep(0.2)
            now = await stored_count(js)
            still, seen = (still + 1, seen) if now == seen and now > 0 else (0, now)
        first.proc.kill()  # a crash: no counts, no flush, its open second unpublished
        first.proc.wait(timeout=10)
        before = await stored_count(js)
        await replay(nc, events.slice(half))
        second = FeaturizerProcess(
            nats_server.url,
            sessions_2013,
            idle_exit=1.0,
            publish_jetstream=True,
            checkpoint_every=every,
            log_path=tmp_path / "second.log",
        )
        with second as p:  # this one waits for FEATURES' acks
            counts = p.wait(timeout=180)
        stored = await read_features(nc)
        md_state = (await js.stream_info(md.MD_STREAM)).state
        await nc.close()
        return before, counts, stored, md_state

    before, counts, stored, md_state = asyncio.run(scenario())
    assert 0 < before < batch.height
    assert counts["publish_retries"] == 0 and counts["published"] == batch.height - before
    if checkpoints:
        assert counts["restored"] and counts["resumed_symbols"] == 0 and counts["suppressed"] == 0
        assert counts["events"] == events.height - half, "the restart replays only what came after the checkpoint"
        assert md_state.messages < 1000 < md_state.first_seq, "MARKET_DATA is trimmed below the last checkpoint"
    else:
        assert not counts["restored"] and counts["resumed_symbols"] == 1 and counts["suppressed"] >= before
        assert md_state.first_seq == 1 and md_state.messages == events.height
    ts = [u.ts for u in stored]
    assert len(ts) == len(set(ts)) == batch.height and ts == sorted(ts)
    ratio, name, errors = worst(frame(stored), batch)
    assert ratio <= 1.0, f"after the restart {name} is off by {errors[name]:.3g}"


def test_rust_heartbeat_publishes_a_quiet_symbols_seconds_on_the_clock(binary, nats_server, tmp_path):
    now = time.time_ns()
    sessions = tmp_path / "now.json"
    session = [now // NS * NS - 3600 * NS, now // NS * NS + 3600 * NS]
    sessions.write_text(json.dumps({"calendar": "XNYS", "start": session[0], "end": session[1], "sessions": [session]}))

    async def scenario():
        nc = await nats.connect(nats_server.url)
        got: list[dict] = []

        async def on_msg(msg) -> None:
            got.append(json.loads(msg.data))

        sub = await nc.subscribe("features.>", cb=on_msg)
        with FeaturizerProcess(
            nats_server.url, sessions, consume="core", heartbeat_lateness=0.3, log_path=tmp_path / "hb.log"
        ):
            t = time.time_ns()  # on time: the heartbeat has closed only seconds that ended 0.3 s ago
            await nc.publish(md.md_subject(md.TRADE, "QQQ:US"), md.encode_trade("QQQ:US", t, 400.0, 100.0, 0))
            await nc.flush()
            await asyncio.sleep(3.0)  # no further tick: only the clock can close seconds now
            checked = time.time_ns()
        await sub.unsubscribe()
        await nc.close()
        return t, got, checked

    t, got, checked = asyncio.run(scenario())
    ts = [u["ts"] for u in got]
    first = -(-t // NS) * NS
    assert len(ts) >= 2, f"the clock closed {len(ts)} seconds in 3 s without a tick"
    assert ts[0] == first and ts == list(range(first, ts[-1] + 1, NS))
    assert checked - 3 * NS < ts[-1] <= checked and all(u["symbol_id"] == "QQQ:US" for u in got)


def test_rust_featurizer_sweeps_the_chunks_of_checkpoints_cut_short(binary, nats_server, tmp_path):
    """A checkpoint put cut short (NATS killed, an ack timeout) leaves chunks no object names; a NATS
    restart reads them back, so the featurizer purges them once they are older than its sweep."""
    from nats.js.api import ObjectMeta

    from feature_store.contract import STREAMING

    bucket = STREAMING.featurizer_state_bucket
    name = STREAMING.featurizer_state_key("python", FEATURE_SET, "1s")

    async def chunk_subjects(js) -> dict[str, int]:
        info = await js.stream_info(f"OBJ_{bucket}", subjects_filter=f"$O.{bucket}.C.>")
        return dict(info.state.subjects or {})

    async def scenario():
        nc = await nats.connect(nats_server.url)
        js = nc.jetstream()
        store = await js.create_object_store(bucket)
        body = bytes(range(256)) * 2048  # 512 KiB: four chunks
        info = await store.put(name, body, meta=ObjectMeta(name=name, headers={STREAMING.position_header: ["7"]}))
        for _ in range(3):  # a put that died after three chunks, before its metadata
            await js.publish(f"$O.{bucket}.C.CUTSHORT", b"x" * 1024)
        before = await chunk_subjects(js)
        with FeaturizerProcess(
            nats_server.url,
            write_sessions(2013, 2013, path=tmp_path / "s.json"),
            orphan_sweep=0.5,
            log_path=tmp_path / "f.log",
        ):
            await asyncio.sleep(3.0)
        after = await chunk_subjects(js)
        kept = (await store.get(name)).data
        await nc.close()
        return info.nuid, body, before, after, kept

    nuid, body, before, after, kept = asyncio.run(scenario())
    live = f"$O.{bucket}.C.{nuid}"
    assert before == {live: 4, f"$O.{bucket}.C.CUTSHORT": 3}
    assert after == {live: 4}, "the orphan chunks are gone, the live object's stay"
    assert kept == body
