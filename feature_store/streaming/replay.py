"""Replay a bronze window onto ``md.trades.*`` / ``md.quotes.*`` at a chosen speed.

Events go out in the order both feature paths use (``feature_store.tick.events.ordered_events``).
``speed`` is market seconds per wall second (1 = real time, 60 = a minute per second); ``None``
publishes as fast as NATS takes them. Publishing is pipelined (no per-message ack wait) and the
replay then checks that the MARKET_DATA stream stored every message it sent.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime

import polars as pl

from core.errors import ServiceError
from feature_store.streaming import market_data as md
from feature_store.streaming.service import ensure_stream
from feature_store.tick.events import ordered_events
from feature_store.tick.gold import bronze_window
from lakehouse.storage import Lake

FLUSH_EVERY = 1000


async def replay(nc, events: pl.DataFrame, speed: float | None = None) -> int:
    """Publish an ``ordered_events`` frame to the market-data subjects; return the number sent."""
    js = nc.jetstream()
    await ensure_stream(js, md.MD_STREAM)
    before = (await js.stream_info(md.MD_STREAM)).state.last_seq  # not .messages: a featurizer trims the stream
    t_first = events["t"].min() if events.height else 0
    wall0, sent = time.perf_counter(), 0
    for (subject, payload), t in zip(md.messages(events), events["t"], strict=True):
        if speed is not None:
            due = wall0 + (t - t_first) / 1e9 / speed
            delay = due - time.perf_counter()
            if delay > 0.0005:
                await nc.flush()
                await asyncio.sleep(delay)
        await nc.publish(subject, payload)
        sent += 1
        if sent % FLUSH_EVERY == 0:
            await nc.flush()
    await nc.flush()
    for _ in range(100):  # the stream stores asynchronously: wait until it holds everything
        stored = (await js.stream_info(md.MD_STREAM)).state.last_seq - before
        if stored >= sent:
            return sent
        await asyncio.sleep(0.05)
    raise ServiceError(f"replay: MARKET_DATA stored {stored} of {sent} messages")


async def replay_bronze(
    nc, lake: Lake, source: str, symbols: list[str] | None, start: datetime, end: datetime, speed: float | None = None
) -> int:
    """Read a bronze window and replay it (see ``replay``)."""
    trades, quotes = bronze_window(lake, source, symbols, start, end)
    if trades.height == 0 and quotes.height == 0:
        return 0
    return await replay(nc, ordered_events(trades, quotes if quotes.height else None), speed)
