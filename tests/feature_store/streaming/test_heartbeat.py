"""The live heartbeat through NATS: a quiet symbol's FeatureUpdates go out when the clock passes its seconds."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import nats
import pytest

from core.clock import FixedClock
from core.errors import ConfigError
from feature_store.messages import FeatureUpdate
from feature_store.streaming import market_data as md
from feature_store.streaming.service import FeaturizerConfig, StreamingFeaturizer

OPEN = datetime(2026, 1, 6, 14, 30, tzinfo=UTC)  # XNYS open
NS = 10**9


def test_heartbeat_publishes_quiet_seconds_without_another_tick(nats_server):
    clock = FixedClock(OPEN + timedelta(milliseconds=500))
    t0 = int(OPEN.timestamp()) * NS

    async def scenario() -> list[FeatureUpdate]:
        nc = await nats.connect(nats_server.url)
        got: list[FeatureUpdate] = []
        five = asyncio.Event()
        cfg = FeaturizerConfig(consume="core", poll_s=0.02, heartbeat_lateness_s=0.25)
        service = StreamingFeaturizer(nc, cfg, clock=clock)
        service.on_update = lambda u: (got.append(u), len(got) >= 10 and five.set())
        stop = asyncio.Event()
        task = asyncio.create_task(service.run(stop=stop))
        await asyncio.sleep(0.5)  # subscribed
        await nc.publish(md.md_subject(md.TRADE, "AAA:US"), md.encode_trade("AAA:US", t0 + NS // 5, 50.0, 100.0, 0))
        await nc.publish(md.md_subject(md.TRADE, "BBB:US"), md.encode_trade("BBB:US", t0 + NS // 4, 60.0, 200.0, 1))
        await nc.flush()
        await asyncio.sleep(0.5)
        assert got == []  # the clock has not passed 14:30:01 + lateness yet
        clock.advance(5.0)  # 14:30:05.5: seconds 1..5 are over (lateness 0.25 s), no tick came
        await asyncio.wait_for(five.wait(), timeout=10)
        stop.set()
        await task
        await nc.close()
        return got

    got = asyncio.run(scenario())
    assert sorted((u.symbol_id, (u.ts - got[0].ts) // NS) for u in got) == [
        (s, k) for s in ("AAA:US", "BBB:US") for k in range(5)
    ]
    assert min(u.ts for u in got) == (int(OPEN.timestamp()) + 1) * NS


def test_a_heartbeat_needs_a_clock():
    with pytest.raises(ConfigError, match="clock"):
        StreamingFeaturizer(None, FeaturizerConfig(heartbeat_lateness_s=0.5))
