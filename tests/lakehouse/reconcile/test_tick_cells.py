"""Bars built through tick cells equal bars built tick by tick, at session edges and on tied stamps."""

from datetime import UTC, datetime

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lakehouse.reconcile.bars import MINUTE_NS, build_bars, shift_cells, tick_cells
from lakehouse.reconcile.sessions import calendar_column, locate, session_table, slot_exprs

TS = pl.Datetime("ns", "UTC")
CAL = {"X:US": "XNYS", "B:CRYPTO": "24/7"}
OPEN = int(datetime(2013, 11, 29, 14, 30, tzinfo=UTC).timestamp()) * 10**9  # half day: closes 18:00
CLOSE = OPEN + 210 * MINUTE_NS


def _direct(trades: pl.DataFrame, tf: str) -> pl.DataFrame:
    """Bars by the definition: each tick placed in its slot, first/last print by (stamp, input order)."""
    ts = trades["ts"].dt.epoch("ns")
    cal = calendar_column(trades, CAL)
    located = locate(ts, cal, session_table(cal.unique().to_list(), ts.min(), ts.max()))
    placed = (
        trades.with_columns(located["open_ns"], located["close_ns"], ts.alias("_pos"))
        .with_columns(slot_exprs(pl.col("_pos"), tf))
        .filter(pl.col("open_ns").is_not_null())
    )
    return (
        placed.group_by("source", "symbol_id", "bar_end")
        .agg(
            pl.col("price").get(pl.col("_pos").arg_min()).alias("open"),
            pl.col("price").max().alias("high"),
            pl.col("price").min().alias("low"),
            pl.col("price").get(pl.col("_pos").arg_max()).alias("close"),
            pl.col("size").sum().alias("volume"),
            pl.len().cast(pl.Int64).alias("n_trades"),
            pl.col("ts").max().alias("last_ts"),
        )
        .select(
            "source",
            "symbol_id",
            pl.col("bar_end").cast(TS).alias("ts"),
            "open",
            "high",
            "low",
            "close",
            "volume",
            "n_trades",
            "last_ts",
        )
        .sort("source", "symbol_id", "ts")
    )


# offsets from the XNYS open: on the open, the close (inclusive), minute edges, 1 ns either side
EDGES = [
    0,
    1,
    -1,
    MINUTE_NS - 1,
    MINUTE_NS,
    MINUTE_NS + 1,
    210 * MINUTE_NS,
    210 * MINUTE_NS + 1,
    210 * MINUTE_NS - 1,
    3_600_000_000_000,
    59 * MINUTE_NS + 999,
]


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["a", "b"]),
            st.sampled_from(list(CAL)),
            st.one_of(st.sampled_from(EDGES), st.integers(-10 * MINUTE_NS, 230 * MINUTE_NS)),
            st.integers(1, 5),
        ),
        min_size=1,
        max_size=60,
    ),
    st.sampled_from(["1s", "1m", "5m", "1h", "1d"]),
)
def test_cells_match_tick_by_tick(rows, tf):
    trades = pl.DataFrame(
        [(s, sym, OPEN + off, float(p), 1.0) for s, sym, off, p in rows],
        schema={"source": pl.String, "symbol_id": pl.String, "ts": pl.Int64, "price": pl.Float64, "size": pl.Float64},
        orient="row",
    ).with_columns(pl.col("ts").cast(TS))
    got = build_bars(trades, tf, CAL).bars.select(_direct(trades, tf).columns)
    assert got.equals(_direct(trades, tf))


def test_tied_stamps_open_at_first_and_close_at_first_of_the_last_prints():
    t = pl.DataFrame(
        {
            "source": "a",
            "symbol_id": "X:US",
            "price": [10.0, 11.0, 12.0, 13.0, 14.0],
            "ts": [OPEN + 5, OPEN + 5, OPEN + 9, OPEN + 9, OPEN + 7],
            "size": 1.0,
        }
    ).with_columns(pl.col("ts").cast(TS))
    bar = build_bars(t, "1m", CAL).bars.row(0, named=True)
    assert (bar["open"], bar["close"]) == (10.0, 12.0)


def test_many_slices_merge_like_one(monkeypatch):
    rng = np.random.default_rng(5)
    n = 5000
    t = pl.DataFrame(
        {
            "source": rng.choice(["a", "b"], n),
            "symbol_id": "X:US",
            "ts": OPEN + rng.integers(0, 30 * MINUTE_NS, n) // 10**6 * 10**6,  # ms stamps: many ties
            "price": rng.normal(100, 1, n),
            "size": rng.exponential(1, n),
        }
    ).with_columns(pl.col("ts").cast(TS))
    whole = build_bars(t, "1m", CAL).bars
    monkeypatch.setattr("lakehouse.reconcile.bars.SLICE_ROWS", 777)
    sliced = build_bars(t, "1m", CAL).bars
    assert sliced.drop("volume", "vwap").equals(whole.drop("volume", "vwap"))
    assert np.allclose(sliced["volume"], whole["volume"], rtol=1e-12)


def test_shifted_cells_equal_cells_of_shifted_ticks():
    t = pl.DataFrame(
        {
            "source": ["a", "a", "b"],
            "symbol_id": "X:US",
            "ts": [OPEN + 1, OPEN + MINUTE_NS, OPEN + 7],
            "price": [1.0, 2.0, 3.0],
            "size": 1.0,
        }
    ).with_columns(pl.col("ts").cast(TS))
    offsets = pl.DataFrame({"source": ["a"], "symbol_id": ["X:US"], "offset_ns": [-3 * MINUTE_NS]})
    moved = t.with_columns((pl.col("ts").dt.epoch("ns") - 3 * MINUTE_NS * (pl.col("source") == "a")).cast(TS))
    assert shift_cells(tick_cells(t, CAL), offsets).frame.equals(tick_cells(moved, CAL).frame)
    with pytest.raises(ValueError):
        shift_cells(tick_cells(t, CAL), offsets.with_columns(pl.lit(7).alias("offset_ns")))
