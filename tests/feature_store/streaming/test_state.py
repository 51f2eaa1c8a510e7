"""The incremental featurizer against the batch path, in process: every feature within its tolerance."""

from __future__ import annotations

import numpy as np
import polars as pl
from parity_helpers import as_frame, stream, worst

from core.timetypes import NS_PER_S
from feature_store.registry import get
from feature_store.streaming.state import TickFeaturizer
from feature_store.tick.batch import tick_features
from feature_store.tick.definitions import FEATURE_SET
from feature_store.tick.events import ordered_events


def test_stream_equals_batch_on_synthetic_sessions(synthetic_ticks):
    trades, quotes = synthetic_ticks
    f = stream(trades, quotes)
    batch = tick_features(trades, quotes)
    ratio, name, errors = worst(as_frame(f.out), batch)
    print(f"worst feature {name}: {errors[name]:.3g} ({ratio:.3g} of its tolerance)")
    assert ratio <= 1.0, f"{name} off by {errors[name]:.3g}"
    assert f.counts["out_of_session"] > 0 and f.counts["rows"] == batch.height
    assert batch.filter(pl.col("mid_rv_300s") > 0).height > 0 and batch.filter(pl.col("quote_imb_300s") != 0).height > 0


def test_without_quotes_and_before_flush(synthetic_ticks):
    trades, _ = synthetic_ticks
    f = stream(trades, None, flush=False)
    batch = tick_features(trades)
    open_second = f.watermark
    assert all(ts < open_second for _, ts, _ in f.out)  # the watermark's own second is still open
    f.flush()
    ratio, name, errors = worst(as_frame(f.out), batch)
    assert ratio <= 1.0, f"{name} off by {errors[name]:.3g}"


def test_a_late_event_is_counted_and_dropped(synthetic_ticks):
    trades, _ = synthetic_ticks
    f = stream(trades.head(200), None, flush=False)
    before = len(f.out)
    f.on_trade("AAA:US", int(f.watermark - 5e9), 50.0, 100.0)
    assert f.counts["late"] == 1 and len(f.out) == before


def test_work_per_second_does_not_grow_with_the_window():
    """O(1) per event: closing a second touches a fixed number of sums, whatever the window lengths."""
    f = TickFeaturizer()
    plan = f.plan
    assert plan.ring_len == 300 and plan.lp_len == 601
    assert len(plan.sums) <= 2 * len(get(FEATURE_SET).features)
    assert np.all([w in (10, 60, 300) for _, w, _ in plan.sums])


OPEN = 1767709800 * NS_PER_S  # 2026-01-06 14:30 UTC, the XNYS open


def test_the_clock_closes_a_quiet_symbols_seconds_without_a_new_tick():
    f = TickFeaturizer()
    f.on_trade("AAA:US", OPEN + 200_000_000, 50.0, 100.0)
    f.on_trade("BBB:US", OPEN + 400_000_000, 60.0, 200.0)
    assert f.out == []  # second 14:30:01 is still open
    f.advance(OPEN + 5 * NS_PER_S + 500_000_000)  # the clock at 14:30:05.5, no tick since
    got = {(s, (ts - OPEN) // NS_PER_S) for s, ts, _ in f.out}
    assert got == {(s, k) for s in ("AAA:US", "BBB:US") for k in range(1, 6)}
    f.on_trade("AAA:US", OPEN + 4 * NS_PER_S, 50.5, 100.0)  # belongs to a closed second
    assert f.counts["late"] == 1
    f.advance(OPEN + 5 * NS_PER_S + 900_000_000)  # same open second: nothing new
    assert len(f.out) == 10
    trades = pl.DataFrame(
        {"symbol_id": ["AAA:US", "BBB:US"], "ts": [OPEN + 200_000_000, OPEN + 400_000_000], "price": [50.0, 60.0]}
    ).with_columns(pl.col("ts").cast(pl.Datetime("ns", "UTC")), size=pl.Series([100.0, 200.0]), seq=pl.Series([0, 1]))
    ratio, name, errors = worst(as_frame(f.out), tick_features(trades, until_ns=OPEN + 5 * NS_PER_S))
    assert ratio <= 1.0, f"{name} off by {errors[name]:.3g}"


def test_stream_with_heartbeats_equals_batch_up_to_the_clock(synthetic_ticks):
    """Heartbeats in every gap between events close quiet seconds early; the rows stay the batch's."""
    trades, quotes = synthetic_ticks
    f, prev, beats = TickFeaturizer(), None, 0
    cols = ("kind", "symbol_id", "t", "price", "size", "bid", "bid_size", "ask", "ask_size")
    for kind, sym, t, price, size, bid, bs, ask, az in ordered_events(trades, quotes).select(cols).iter_rows():
        if prev is not None:
            for hb in range(prev + 300_000_000, min(t, prev + 8 * NS_PER_S), 700_000_000):  # the clock between events
                before = len(f.out)
                f.advance(hb)
                beats += len(f.out) > before
        prev = t
        if kind == "trade":
            f.on_trade(sym, t, price, size)
        else:
            f.on_quote(sym, t, bid, bs, ask, az)
    f.advance(prev + 3 * NS_PER_S)
    batch = tick_features(trades, quotes, until_ns=f.target)
    ratio, name, errors = worst(as_frame(f.out), batch)
    assert ratio <= 1.0, f"{name} off by {errors[name]:.3g}"
    assert beats > 100 and f.counts["late"] == 0 and f.counts["rows"] == batch.height
