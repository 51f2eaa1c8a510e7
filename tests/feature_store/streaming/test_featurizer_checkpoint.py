"""A featurizer stopped or killed mid-replay resumes from its checkpoint: FEATURES as if it never stopped.

Each test compares FEATURES, message by message (subject, Nats-Msg-Id, payload bytes), with what an
uninterrupted run on a server of its own stored, and checks that MARKET_DATA was trimmed below the
checkpoint (it no longer grows forever).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import pickle

import nats
import polars as pl
from parity_helpers import as_frame
from polars.testing import assert_frame_equal

from feature_store.retention import checkpoint_floors
from feature_store.streaming import market_data as md
from feature_store.streaming.replay import replay
from feature_store.streaming.service import FeaturizerConfig, StreamingFeaturizer
from feature_store.streaming.state import TickFeaturizer
from feature_store.tick.events import ordered_events
from mps.nats_server import NatsServer

CHECKPOINTS = FeaturizerConfig(checkpoint_every_s=0.05)


async def _stored(nc) -> list[tuple[str, str, bytes]]:
    """(subject, Nats-Msg-Id, payload) of every FEATURES message, sorted (stream order differs between runs)."""
    js = nc.jetstream()
    total = (await js.stream_info(md.FEATURES_STREAM)).state.messages
    got: list[tuple[str, str, bytes]] = []
    done = asyncio.Event()

    async def on_msg(msg) -> None:
        got.append((msg.subject, msg.headers["Nats-Msg-Id"], msg.data))
        if len(got) >= total:
            done.set()

    sub = await js.subscribe("", stream=md.FEATURES_STREAM, ordered_consumer=True, cb=on_msg)
    await asyncio.wait_for(done.wait(), timeout=30)
    await sub.unsubscribe()
    return sorted(got)


async def _uninterrupted(events: pl.DataFrame) -> list[tuple[str, str, bytes]]:
    """FEATURES after one run over every event, on a NATS server of its own."""
    with NatsServer() as server:
        nc = await nats.connect(server.url)
        await replay(nc, events)
        await StreamingFeaturizer(nc, FeaturizerConfig(checkpoint_every_s=0)).run(idle_exit_s=0.3)
        stored = await _stored(nc)
        await nc.close()
    return stored


async def _restart(nc, config: FeaturizerConfig) -> tuple:
    """After the first run ended: the checkpoints' positions, a second run to the end of the input,
    what FEATURES holds and MARKET_DATA's state (closes ``nc``)."""
    positions = await checkpoint_floors(nc.jetstream())
    second = StreamingFeaturizer(nc, config)
    await second.run(idle_exit_s=0.3)
    stored = await _stored(nc)
    market = (await nc.jetstream().stream_info(md.MD_STREAM)).state
    await nc.close()
    return positions, second, stored, market


def test_a_stopped_featurizer_resumes_from_its_checkpoint(synthetic_ticks, nats_server):
    events = ordered_events(*synthetic_ticks)
    # a small max_in_flight makes the featurizer wait for acks often, so the stop lands mid-replay
    config = FeaturizerConfig(checkpoint_every_s=0.05, publish_jetstream=True, max_in_flight=64)

    async def scenario():
        expected = await _uninterrupted(events)
        nc = await nats.connect(nats_server.url)
        await replay(nc, events)
        stop, sent = asyncio.Event(), itertools.count(1)
        first = StreamingFeaturizer(nc, config)
        first.on_update = lambda _: stop.set() if next(sent) >= len(expected) // 2 else None
        await first.run(stop=stop)  # mid-replay: the stop stores a last checkpoint
        return expected, first, *await _restart(nc, config)

    expected, first, positions, second, stored, market = asyncio.run(scenario())
    assert positions is not None and len(positions) == 1, "one checkpoint, with its position"
    position = positions[0]
    assert 0 < first.counts["published"] < len(expected) and 0 < position < events.height
    assert second.resumed_at == position, "the restart must continue from the checkpoint"
    assert second.counts["suppressed"] == 0, "a restored state publishes no row twice"
    assert stored == expected
    assert market.first_seq > position, "MARKET_DATA is trimmed below the checkpoint"


def test_a_killed_featurizer_resumes_from_its_last_periodic_checkpoint(synthetic_ticks, nats_server):
    events = ordered_events(*synthetic_ticks)
    half = events.height // 2

    async def scenario():
        expected = await _uninterrupted(events)
        nc = await nats.connect(nats_server.url)
        await replay(nc, events.head(half))
        crashed_nc = await nats.connect(nats_server.url)
        first = StreamingFeaturizer(crashed_nc, CHECKPOINTS)
        task = asyncio.create_task(first.run())
        async with asyncio.timeout(30):
            while await checkpoint_floors(nc.jetstream()) != [half]:  # the first half, checkpointed
                await asyncio.sleep(0.01)
        at_checkpoint: dict[int, int] = {}  # checkpoints stored -> rows published by then

        def crash_after_rows_past_the_checkpoint(_) -> None:
            since = at_checkpoint.setdefault(first.counts["checkpoints"], first.counts["published"])
            if first.counts["published"] - since >= 50:
                task.cancel()  # no checkpoint can follow: the run stops at its next await

        first.on_update = crash_after_rows_past_the_checkpoint
        await replay(nc, events.slice(half))
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await crashed_nc.close()  # its rows past the checkpoint were published; its state is lost
        return expected, first, *await _restart(nc, CHECKPOINTS)

    expected, first, positions, second, stored, market = asyncio.run(scenario())
    assert positions is not None and len(positions) == 1, "one checkpoint, with its position"
    position = positions[0]
    assert half <= position < first.counts["events"], "the crash came after rows past the last checkpoint"
    assert second.resumed_at == position
    assert first.counts["published"] + second.counts["published"] > len(expected), "rows past it were sent twice"
    assert stored == expected, "JetStream dropped the rows sent again (same Nats-Msg-Id)"
    assert market.first_seq > position


def test_a_restored_state_continues_exactly(synthetic_ticks):
    events = ordered_events(*synthetic_ticks)
    whole, before, resumed = TickFeaturizer(), TickFeaturizer(), TickFeaturizer()
    _feed(whole, events)
    _feed(before, events.head(events.height // 2))
    resumed.restore(pickle.loads(pickle.dumps(before.state(), protocol=5)))
    _feed(resumed, events.slice(events.height // 2))
    for f in (whole, resumed):
        f.flush()
    assert_frame_equal(as_frame(before.out + resumed.out), as_frame(whole.out), check_exact=True)


def _feed(f: TickFeaturizer, events: pl.DataFrame) -> None:
    cols = ("kind", "symbol_id", "t", "price", "size", "bid", "bid_size", "ask", "ask_size")
    for kind, sym, t, price, size, bid, bs, ask, az in events.select(cols).iter_rows():
        if kind == "trade":
            f.on_trade(sym, t, price, size)
        else:
            f.on_quote(sym, t, bid, bs, ask, az)
