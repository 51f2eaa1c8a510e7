"""mps.nats_server runs the wheel's nats-server with JetStream; a restart keeps the store."""

from __future__ import annotations

import asyncio

import nats

from feature_store.messages import ensure_streams
from mps.nats_server import NatsServer


def test_restart_keeps_jetstream_state(tmp_path):
    server = NatsServer(store_dir=tmp_path / "store")

    async def publish():
        nc = await nats.connect(server.url)
        js = nc.jetstream()
        await ensure_streams(js, ["FEATURES"])
        await js.publish("features.v1.1s.AAPL:US", b"{}")
        await nc.close()

    async def count():
        nc = await nats.connect(server.url)
        info = await nc.jetstream().stream_info("FEATURES")
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
