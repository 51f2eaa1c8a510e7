"""The incremental featurizer against the batch path, in process: every feature within its tolerance."""

from __future__ import annotations

import numpy as np
import polars as pl
from parity_helpers import as_frame, stream, worst

from feature_store.registry import get
from feature_store.streaming.state import TickFeaturizer
from feature_store.tick.batch import tick_features
from feature_store.tick.definitions import FEATURE_SET


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
