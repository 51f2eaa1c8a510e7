"""Helpers of the parity tests: feed a featurizer in process, read FEATURES back, compare rows with batch rows."""

from __future__ import annotations

import asyncio

import polars as pl

from feature_store.messages import FeatureUpdate, decode
from feature_store.registry import get
from feature_store.streaming import market_data as md
from feature_store.streaming.state import TickFeaturizer
from feature_store.tick.definitions import FEATURE_NAMES, FEATURE_SET, parity_error
from feature_store.tick.events import ordered_events


def stream(trades: pl.DataFrame, quotes: pl.DataFrame | None, flush: bool = True) -> TickFeaturizer:
    """Feed ordered events to a fresh featurizer, the way the NATS service does."""
    f = TickFeaturizer()
    cols = ("kind", "symbol_id", "t", "price", "size", "bid", "bid_size", "ask", "ask_size")
    for kind, sym, t, price, size, bid, bs, ask, az in ordered_events(trades, quotes).select(cols).iter_rows():
        if kind == "trade":
            f.on_trade(sym, t, price, size)
        else:
            f.on_quote(sym, t, bid, bs, ask, az)
    if flush:
        f.flush()
    return f


def as_frame(rows: list[tuple[str, int, list[float]]]) -> pl.DataFrame:
    names = get(FEATURE_SET).names
    return pl.DataFrame(
        {
            "symbol_id": [r[0] for r in rows],
            "ts": [r[1] for r in rows],
            **{n: [r[2][i] for r in rows] for i, n in enumerate(names)},
        }
    )


def worst(streamed: pl.DataFrame, batch: pl.DataFrame) -> tuple[float, str, dict]:
    """Largest parity error over rows and features, relative to each feature's tolerance."""
    fs = get(FEATURE_SET)
    b = batch.with_columns(pl.col("ts").dt.epoch("ns")).sort("symbol_id", "ts")
    s = streamed.sort("symbol_id", "ts")
    assert s.select("symbol_id", "ts").equals(b.select("symbol_id", "ts")), "stream and batch rows differ"
    ratio, name, errors = 0.0, "", {}
    for f in fs.features:
        err = max(parity_error(x, y) for x, y in zip(s[f.name], b[f.name], strict=True))
        errors[f.name] = err
        if err / f.stream_tolerance >= ratio:
            ratio, name = err / f.stream_tolerance, f.name
    return ratio, name, errors


async def read_features(nc) -> list[FeatureUpdate]:
    """Every FeatureUpdate the FEATURES stream holds, in stream order."""
    js = nc.jetstream()
    total = (await js.stream_info(md.FEATURES_STREAM)).state.messages
    got: list[FeatureUpdate] = []
    done = asyncio.Event()

    async def on_msg(msg) -> None:
        got.append(decode(msg.data))
        if len(got) >= total:
            done.set()

    sub = await js.subscribe("", stream=md.FEATURES_STREAM, ordered_consumer=True, cb=on_msg)
    if total:
        await asyncio.wait_for(done.wait(), timeout=60)
    await sub.unsubscribe()
    return got


def frame(updates: list[FeatureUpdate]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "symbol_id": [u.symbol_id for u in updates],
            "ts": [u.ts for u in updates],
            **{n: [u.values[i] for u in updates] for i, n in enumerate(FEATURE_NAMES)},
        }
    )
