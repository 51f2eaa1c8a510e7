"""Publish a session's tick features through the streaming featurizer (demo and end-to-end runs).

``publish_session_features`` starts the featurizer on MARKET_DATA, replays the session's ticks
onto md.* while it runs (at ``speed``, or as fast as NATS takes them), and returns once every
second is published to FEATURES: the same path live data takes, not a re-serialised batch frame.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime

import polars as pl

from core.errors import TableError
from feature_store.messages import FeatureUpdate
from feature_store.streaming.replay import replay
from feature_store.streaming.service import FeaturizerConfig, StreamingFeaturizer
from feature_store.tick.events import ordered_events
from feature_store.tick.gold import bronze_window
from lakehouse.storage import Lake


def main_source(lake: Lake, start: datetime, end: datetime, symbols: list[str] | None = None) -> str:
    """The bronze source with the most trades in the window (tick features are computed per source)."""
    from lakehouse.tables import BRONZE_TRADES

    trades = lake.read(BRONZE_TRADES, ["source", "ts", "symbol_id"])
    trades = trades.filter(pl.col("ts").is_between(start, end, closed="left"))
    if symbols:
        trades = trades.filter(pl.col("symbol_id").is_in(symbols))
    if trades.height == 0:
        raise TableError(f"bronze.trades has no rows in [{start}, {end})")
    return trades["source"].value_counts(sort=True)["source"][0]


async def publish_session_features(
    nc,
    trades: pl.DataFrame,
    quotes: pl.DataFrame | None,
    feature_set: str = "tick_v2",
    speed: float | None = None,
    on_update: Callable[[FeatureUpdate], None] | None = None,
) -> dict:
    """Replay one source's ticks through NATS and the streaming featurizer; return its counts (+ ``sent``)."""
    featurizer = StreamingFeaturizer(nc, FeaturizerConfig(feature_set=feature_set))
    featurizer.on_update = on_update
    events = ordered_events(trades, quotes)
    task = asyncio.create_task(featurizer.run(until_events=events.height))
    await asyncio.sleep(0)  # let it subscribe before the first tick
    sent = await replay(nc, events, speed)
    counts = await task
    return {**counts, "sent": sent}


async def publish_lake_session(
    nc, lake: Lake, start: datetime, end: datetime, symbols: list[str] | None = None, **kwargs
) -> dict:
    """``publish_session_features`` for a bronze window of the main source (``main_source``)."""
    source = main_source(lake, start, end, symbols)
    trades, quotes = bronze_window(lake, source, symbols, start, end)
    return {**await publish_session_features(nc, trades, quotes if quotes.height else None, **kwargs), "source": source}
