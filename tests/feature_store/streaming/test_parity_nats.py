"""Real BAC ticks replayed through NATS: the featurizer's FeatureUpdates equal the batch gold rows.

The replay publishes 45 minutes of 2013-10-07 (trades and NBBO quotes, 5 pre-open minutes
included) onto md.trades/md.quotes; the featurizer consumes MARKET_DATA and publishes to FEATURES;
the test reads FEATURES back and compares every value with ``tick_features`` on the same bronze
rows, reporting the worst feature. A second run crashes the featurizer half-way and restarts it
without a checkpoint (the first-run path: FEATURES and a replay from the session open; the
checkpoint path is test_featurizer_checkpoint's).
"""

from __future__ import annotations

import asyncio

import nats
import polars as pl
import pytest
from parity_helpers import frame, read_features, worst

from feature_store.streaming.online import OnlineView
from feature_store.streaming.replay import replay
from feature_store.streaming.service import FeaturizerConfig, StreamingFeaturizer
from feature_store.streaming.session import publish_session_features
from feature_store.tick.batch import tick_features
from feature_store.tick.definitions import FEATURE_SET
from feature_store.tick.events import ordered_events

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bac_batch(bac_ticks):
    trades, quotes = bac_ticks
    return ordered_events(trades, quotes), tick_features(trades, quotes)


def test_replayed_day_through_nats_equals_batch_gold_rows(bac_ticks, bac_batch, nats_server):
    trades, quotes = bac_ticks
    events, batch = bac_batch

    async def scenario():
        nc = await nats.connect(nats_server.url)
        view = OnlineView()
        counts = await publish_session_features(nc, trades, quotes, on_update=view.update)  # replays while it runs
        assert counts["sent"] == events.height
        stored = await read_features(nc)
        await nc.close()
        return counts, stored, view

    counts, stored, view = asyncio.run(scenario())
    assert counts["bad"] == 0 and counts["late"] == 0 and counts["published"] == batch.height
    assert {u.feature_set for u in stored} == {FEATURE_SET} and all(u.known_at == u.ts for u in stored)
    ratio, name, errors = worst(frame(stored), batch)
    print(f"\nBAC {batch.height} rows through NATS: worst feature {name} error {errors[name]:.3g}")
    assert ratio <= 1.0, f"worst feature {name}: error {errors[name]:.3g} exceeds its tolerance"
    last = batch.row(-1, named=True)
    online = view.latest("BAC:US", FEATURE_SET)
    assert online.ts == last["ts"].timestamp() * 1e9 and online.values["ret_1s"] == last["ret_1s"]


def test_a_crashed_featurizer_resumes_without_gaps_or_duplicates(bac_batch, nats_server):
    events, batch = bac_batch

    async def scenario():
        nc = await nats.connect(nats_server.url)
        await replay(nc, events)
        crash = asyncio.Event()
        no_checkpoints = FeaturizerConfig(checkpoint_every_s=0)
        first = StreamingFeaturizer(nc, no_checkpoints)
        first.on_update = lambda u: crash.set() if first.counts["published"] >= batch.height // 2 else None
        await first.run(stop=crash)  # stops mid-stream: its state is dropped, its open second unpublished
        second = StreamingFeaturizer(nc, no_checkpoints)
        counts = await second.run(idle_exit_s=1.0)
        stored = await read_features(nc)
        await nc.close()
        return first.counts, counts, stored

    first, second, stored = asyncio.run(scenario())
    assert 0 < first["published"] < batch.height and second["suppressed"] >= first["published"] - 1
    ts = [u.ts for u in stored]
    assert len(ts) == len(set(ts)) == batch.height and ts == sorted(ts)
    ratio, name, errors = worst(frame(stored), batch)
    assert ratio <= 1.0, f"after the restart {name} is off by {errors[name]:.3g}"


def test_replay_paces_market_time_at_the_chosen_speed(synthetic_ticks, nats_server):
    trades, quotes = synthetic_ticks
    events = ordered_events(trades, quotes).filter(pl.col("t") < pl.col("t").min() + 2 * 10**9)  # 2 market seconds

    async def scenario() -> tuple[int, float]:
        nc = await nats.connect(nats_server.url)
        t0 = asyncio.get_running_loop().time()
        sent = await replay(nc, events, speed=4.0)
        elapsed = asyncio.get_running_loop().time() - t0
        await nc.close()
        return sent, elapsed

    sent, elapsed = asyncio.run(scenario())
    span_s = (events["t"].max() - events["t"].min()) / 1e9
    assert sent == events.height and elapsed >= span_s / 4.0 * 0.9  # never faster than asked
