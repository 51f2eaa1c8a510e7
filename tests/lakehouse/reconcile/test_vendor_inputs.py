"""The rules that pick each vendor's input to reconcile: quote-mid fallback and vendor-bar preference."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
from polars.testing import assert_frame_equal

from lakehouse.futures_continuous import one_delivery_per_key
from lakehouse.reconcile.pipeline import preferred_vendor_bars, ticks_with_mid_fallback

T0 = datetime(2024, 1, 2, 15, 0, tzinfo=UTC)
NS = pl.Datetime("ns", "UTC")


def test_quote_mids_stand_in_only_for_vendors_without_trades():
    trades = pl.DataFrame(
        {"source": ["a"], "symbol_id": ["X:US"], "ts": [T0], "price": [10.0], "size": [100.0]},
        schema_overrides={"ts": NS},
    )
    quotes = pl.DataFrame(
        {
            "source": ["a", "b", "b", "b"],
            "symbol_id": ["X:US", "X:US", "X:US", "Y:US"],
            "ts": [T0] * 4,
            "bid": [9.9, 9.98, 10.0, None],
            "ask": [10.1, 10.02, 9.0, 5.0],  # b's second quote is crossed, Y has no bid
        },
        schema_overrides={"ts": NS},
    )
    ticks = ticks_with_mid_fallback(trades, quotes).sort("source")
    assert ticks.select("source", "price", "size").rows() == [("a", 10.0, 100.0), ("b", 10.0, 0.0)]


def test_trade_bars_win_over_mid_bars_of_the_same_vendor():
    bars = pl.DataFrame(
        {
            "source": ["a", "a", "b", "a"],
            "symbol_id": ["X:US"] * 4,
            "tf": ["1m"] * 4,
            "ts": [T0, T0, T0, T0],
            "kind": ["mid", "trade", "mid", "bid"],
            "close": [1.0, 2.0, 3.0, 4.0],
        },
        schema_overrides={"ts": NS},
    )
    picked = preferred_vendor_bars(bars).sort("source")
    assert picked.select("source", "kind", "close").rows() == [("a", "trade", 2.0), ("b", "mid", 3.0)]
    assert picked["last_ts"].to_list() == [T0, T0] and picked["arrival"].null_count() == 2


def test_vendor_priority_decides_which_delivery_is_kept():
    rows = pl.DataFrame(
        {"source": ["zeta", "alpha", "mid", "alpha"], "symbol_id": ["ESZ3"] * 4, "ts": [1, 1, 1, 2], "v": [1, 2, 3, 4]}
    )
    keys = ["symbol_id", "ts"]
    by_priority = one_delivery_per_key(rows, keys, ["zeta", "mid"]).sort("ts")
    assert by_priority["source"].to_list() == ["zeta", "alpha"]  # ts 2 has only alpha
    by_name = one_delivery_per_key(rows, keys).sort("ts")
    assert by_name["source"].to_list() == ["alpha", "alpha"]
    assert_frame_equal(one_delivery_per_key(rows, keys, ["mid"]).sort("ts"), rows[[2, 3]])
