"""tick_v2 into gold.features from a bronze lake (idempotent), and the online view over the rows."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from feature_store.gold import read_features
from feature_store.messages import FeatureUpdate, decode
from feature_store.streaming.online import OnlineView
from feature_store.streaming.service import fast_encode
from feature_store.tick.batch import tick_features
from feature_store.tick.definitions import FEATURE_NAMES, FEATURE_SET
from feature_store.tick.gold import build_tick_features
from lakehouse.tables import BRONZE_QUOTES, BRONZE_TRADES

START, END = datetime(2013, 10, 7, 13, 25, tzinfo=UTC), datetime(2013, 10, 7, 13, 45, tzinfo=UTC)


def _bronze(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(
        pl.lit("lean").alias("source"),
        pl.lit(datetime(2026, 11, 1, tzinfo=UTC)).cast(pl.Datetime("ns", "UTC")).alias("ingest_ts"),
        pl.lit("b1").alias("batch_id"),
        pl.col("ts").dt.strftime("%Y-%m-%d").alias("date"),
    )


@pytest.fixture
def bac_lake(lake, bac_ticks):
    trades, quotes = (f.filter(pl.col("ts") < END) for f in bac_ticks)
    lake.append(BRONZE_TRADES, _bronze(trades))
    lake.append(BRONZE_QUOTES, _bronze(quotes))
    return lake, trades, quotes


def test_build_writes_gold_rows_once(bac_lake):
    lake, trades, quotes = bac_lake
    n = build_tick_features(lake, "lean", START, END, ["BAC:US"])
    assert build_tick_features(lake, "lean", START, END, ["BAC:US"]) == n  # a re-run replaces its window
    stored = read_features(lake, FEATURE_SET)
    expected = tick_features(trades, quotes)
    assert stored.height == n == expected.height
    assert (stored["known_at"] == stored["ts"]).all()
    assert_frame_equal(stored.select(FEATURE_NAMES), expected.sort("symbol_id", "ts").select(FEATURE_NAMES))
    view = OnlineView()
    assert view.load_frame(stored) == n
    last = expected.row(-1, named=True)
    row = view.latest("BAC:US", FEATURE_SET)
    assert row.values == {name: last[name] for name in FEATURE_NAMES}
    earlier = view.latest("BAC:US", FEATURE_SET, as_of=int(last["ts"].timestamp() * 1e9) - 10**9)
    assert earlier.ts == row.ts - 10**9  # as of one second before, the row before
    assert view.frame(FEATURE_SET).height == 1


def update(ts: int, values: tuple[float, ...], symbol: str = "AAA:US") -> FeatureUpdate:
    return FeatureUpdate(symbol, "1s", ts, ts, FEATURE_SET, values, ts // 10**9)


def test_online_view_keeps_the_newest_row_and_ignores_stale_ones():
    view = OnlineView(history=3)
    base = tuple(float(i) for i in range(len(FEATURE_NAMES)))
    for k in range(5):
        view.update(update((100 + k) * 10**9, tuple(v + k for v in base)))
    view.update(update(101 * 10**9, base))  # a redelivered older second changes nothing
    row = view.latest("AAA:US", FEATURE_SET)
    assert row.ts == 104 * 10**9 and row.values["ret_1s"] == 4.0
    assert view.latest("AAA:US", FEATURE_SET, as_of=50 * 10**9) is None  # older than the history kept
    assert view.latest("ZZZ:US", FEATURE_SET) is None and view.symbols(FEATURE_SET) == ["AAA:US"]


def test_fast_encoding_decodes_to_the_same_update():
    u = update(1381152601 * 10**9, tuple(1.0 / (i + 3) - 0.1 * i for i in range(len(FEATURE_NAMES))))
    assert decode(fast_encode(u)) == u
