"""feature_store.retention trims a stream below what its consumers and the featurizer checkpoints have consumed."""

from __future__ import annotations

import asyncio

import nats
import pytest
from nats.js.api import ConsumerConfig, ObjectMeta
from nats.js.errors import BucketNotFoundError

from feature_store.contract import STREAMING
from feature_store.retention import checkpoint_floors, trim_consumed
from feature_store.streaming import market_data as md
from feature_store.streaming.service import ensure_stream

M = 10  # messages in the stream


async def _stream_of(js, name: str, subject: str) -> None:
    await js.add_stream(name=name, subjects=[f"{subject}.>"])
    for i in range(M):
        await js.publish(f"{subject}.x", str(i).encode())


async def _checkpoint(js, name: str, headers: dict | None) -> None:
    try:
        store = await js.object_store(STREAMING.featurizer_state_bucket)
    except BucketNotFoundError:
        store = await js.create_object_store(STREAMING.featurizer_state_bucket)
    await store.put(name, b"state", meta=ObjectMeta(name=name, headers=headers))


def test_a_stream_is_purged_up_to_what_its_durable_acked(nats_server):
    async def scenario():
        nc = await nats.connect(nats_server.url)
        js = nc.jetstream()
        await _stream_of(js, "SIGNALS_T", "sig")
        sub = await js.pull_subscribe("sig.>", durable="reader", stream="SIGNALS_T", config=ConsumerConfig())
        for msg in await sub.fetch(4):
            await msg.ack_sync()  # the server has applied the ack when this returns
        # an ephemeral reader that acked nothing (a dead process's, say) does not hold the stream back
        await js.pull_subscribe("sig.>", stream="SIGNALS_T")
        removed = await trim_consumed(js, "SIGNALS_T")
        state = (await js.stream_info("SIGNALS_T")).state
        again = await trim_consumed(js, "SIGNALS_T")
        await nc.close()
        return removed, state, again

    removed, state, again = asyncio.run(scenario())
    assert (removed, state.messages, state.first_seq, state.last_seq) == (4, M - 4, 5, M)
    assert again == 0, "nothing below the floor is left to remove"


def test_a_stream_nobody_reads_is_left_whole(nats_server):
    async def scenario():
        nc = await nats.connect(nats_server.url)
        js = nc.jetstream()
        await _stream_of(js, "UNREAD", "unread")
        removed = await trim_consumed(js, "UNREAD")
        state = (await js.stream_info("UNREAD")).state
        await nc.close()
        return removed, state

    removed, state = asyncio.run(scenario())
    assert (removed, state.messages, state.first_seq) == (0, M, 1)


def test_market_data_is_purged_below_a_checkpoint_position(nats_server):
    position = 6

    async def scenario():
        nc = await nats.connect(nats_server.url)
        js = nc.jetstream()
        await ensure_stream(js, md.MD_STREAM)
        for i in range(M):
            await js.publish(md.md_subject(md.TRADE, "AAA:US"), md.encode_trade("AAA:US", i, 10.0, 100.0, i))
        assert await checkpoint_floors(js) == [], "no bucket yet: no checkpoint"
        await _checkpoint(js, STREAMING.featurizer_state_key("rust", "tick_v2", "1s"), {"Mps-Md-Seq": [str(position)]})
        floors = await checkpoint_floors(js)
        removed = await trim_consumed(js, md.MD_STREAM, extra_floors=floors or ())
        state = (await js.stream_info(md.MD_STREAM)).state
        await nc.close()
        return floors, removed, state

    floors, removed, state = asyncio.run(scenario())
    assert floors == [position]
    assert (removed, state.messages, state.first_seq) == (position, M - position, position + 1)


@pytest.mark.parametrize(
    ("headers", "floors"),
    [
        ({"Mps-Md-Seq": ["42"]}, [42]),  # Go and Rust write a list per header
        ({"Mps-Md-Seq": "42"}, [42]),
        (None, None),  # a checkpoint without a position: MARKET_DATA must not be trimmed
        ({"Mps-Md-Seq": ["soon"]}, None),
    ],
)
def test_checkpoint_positions_come_from_the_object_header(nats_server, headers, floors):
    async def scenario():
        nc = await nats.connect(nats_server.url)
        js = nc.jetstream()
        await _checkpoint(js, "featurizer.python.tick_v2.1s", {"Mps-Md-Seq": ["7"]})
        await _checkpoint(js, "featurizer.rust.tick_v2.1s", headers)
        found = await checkpoint_floors(js)
        await nc.close()
        return found

    assert asyncio.run(scenario()) == (None if floors is None else [7, *floors])


def test_a_trim_with_nats_down_returns_nothing_and_raises_nothing(nats_server):
    async def scenario():
        nc = await nats.connect(nats_server.url, allow_reconnect=False)
        js = nc.jetstream(timeout=0.5)
        await _stream_of(js, "GONE", "gone")
        nats_server.stop()
        return await trim_consumed(js, "GONE", extra_floors=[5])

    assert asyncio.run(scenario()) == 0
