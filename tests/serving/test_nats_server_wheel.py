"""mps.nats_server runs the wheel's nats-server with JetStream; a restart keeps the store."""

from __future__ import annotations

import asyncio

import nats

from feature_store.contract import STREAMING
from feature_store.messages import ensure_streams, features_subject
from mps.nats_server import NatsServer


def test_restart_keeps_jetstream_state(tmp_path):
    server = NatsServer(store_dir=tmp_path / "store")

    async def publish():
        nc = await nats.connect(server.url)
        js = nc.jetstream()
        await ensure_streams(js, [STREAMING.stream_of("features")])
        await js.publish(features_subject("1s", "AAPL:US"), b"{}")
        await nc.close()

    async def count():
        nc = await nats.connect(server.url)
        info = await nc.jetstream().stream_info(STREAMING.stream_of("features"))
        await nc.close()
        return info.state.messages

    try:
        server.start()
        asyncio.run(publish())
        server.stop()
        server.start()
        assert asyncio.run(count()) == 1
    finally:
        server.close()
