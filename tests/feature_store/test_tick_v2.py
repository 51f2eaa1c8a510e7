"""tick_v2 batch path on small inline ticks: grid, sessions, trade signs, returns, quotes, point in time."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from core.errors import TableError
from feature_store.registry import get
from feature_store.tick.batch import tick_features
from feature_store.tick.definitions import FEATURE_NAMES, FEATURE_SET

TS = pl.Datetime("ns", "UTC")
OPEN = datetime(2026, 1, 5, 14, 30, tzinfo=UTC)  # XNYS opens 09:30 New York (EST) on Monday 5 Jan 2026
CLOSE = datetime(2026, 1, 5, 21, 0, tzinfo=UTC)
S = "SIM1:SIM"


def _trades(rows: list[tuple[datetime, float, float]], symbol: str = S) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "symbol_id": symbol,
            "ts": [r[0] for r in rows],
            "price": [r[1] for r in rows],
            "size": [r[2] for r in rows],
            "seq": list(range(len(rows))),
        }
    ).with_columns(pl.col("ts").cast(TS))


def _quotes(rows: list[tuple[datetime, float | None, float | None]], symbol: str = S) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "symbol_id": symbol,
            "ts": [r[0] for r in rows],
            "bid": [r[1] for r in rows],
            "bid_size": [None if r[1] is None else 300.0 for r in rows],
            "ask": [r[2] for r in rows],
            "ask_size": [None if r[2] is None else 100.0 for r in rows],
            "exchange": "Q",
            "seq": list(range(len(rows))),
        },
        schema_overrides={"bid": pl.Float64, "ask": pl.Float64, "bid_size": pl.Float64, "ask_size": pl.Float64},
    ).with_columns(pl.col("ts").cast(TS))


def at(seconds: float, day: datetime = OPEN) -> datetime:
    return day + timedelta(seconds=seconds)


def test_registry_holds_tick_v2_with_tolerances():
    fs = get(FEATURE_SET)
    assert fs.tf == "1s" and fs.names == FEATURE_NAMES and len(fs) == 28
    assert all(f.stream_tolerance == 1e-9 for f in fs.features)
    assert fs["ret_600s"].window == 601 and fs["mid_rv_300s"].param["w"] == 300


def test_grid_runs_from_first_trade_to_last_event_inside_the_session():
    trades = _trades([(at(-30), 10.0, 100), (at(2.5), 10.0, 100), (at(5.0), 10.1, 200)])
    feats = tick_features(trades, _quotes([(at(1.2), 9.99, 10.01), (at(7.9), 10.05, 10.07)]))
    assert feats["ts"].to_list() == [at(s) for s in range(3, 9)]  # pre-market print dropped; ends at 8 s
    assert (feats["known_at"] == feats["ts"]).all()
    row = feats.row(0, named=True)
    assert row["secs_since_open"] == 3.0 and row["secs_to_close"] == (CLOSE - at(3)).total_seconds()
    # a print at exactly a second's end belongs to that second
    assert feats.filter(pl.col("ts") == at(5))["ret_1s"][0] == pytest.approx(math.log(10.1 / 10.0), abs=1e-15)


def test_tick_rule_and_quote_rule_signs():
    # NBBO 10.00 x 10.50 (mid 10.25) from 1 s; before that one side only (no NBBO)
    quotes = _quotes([(at(0.1), 10.0, None), (at(1.0), 10.0, 10.5)])
    # 10.50 (first: no sign), 10.375 (down tick, above the mid), 10.375 (zero tick), 10.25 (down, at the mid),
    # 10.125 (down, below the mid)
    prices = (10.5, 10.375, 10.375, 10.25, 10.125)
    trades = _trades(
        [(at(t), p, 100.0 * (k + 1)) for k, (t, p) in enumerate(zip((0.5, 1.5, 1.6, 1.7, 1.8), prices, strict=True))]
    )
    row = tick_features(trades, quotes).filter(pl.col("ts") == at(2)).row(0, named=True)
    tick = np.array([0, -1, -1, -1, -1])
    quote = np.array([0, 1, 1, -1, -1])  # the quote rule; at the mid it falls back to the tick rule
    size = 100.0 * np.arange(1, 6)
    assert row["tick_imb_10s"] == pytest.approx((tick * size).sum() / size.sum(), abs=1e-15)
    assert row["quote_imb_10s"] == pytest.approx((quote * size).sum() / size.sum(), abs=1e-15)
    up = _trades([(at(0.5), 10.0, 100), (at(0.6), 10.125, 100), (at(0.7), 10.125, 100)])
    assert tick_features(up)["tick_imb_10s"][0] == pytest.approx(2 / 3)  # a zero tick keeps the last sign


def test_returns_sizes_rates_and_book_against_numpy():
    rng = np.random.default_rng(5)
    secs = np.sort(rng.uniform(0, 900, 700))
    prices = np.round(20 * np.exp(np.cumsum(rng.normal(0, 3e-4, secs.size))), 2)
    sizes = rng.choice([100.0, 200.0, 500.0, 12_000.0], secs.size)
    trades = _trades([(at(float(s)), float(p), float(z)) for s, p, z in zip(secs, prices, sizes, strict=True)])
    feats = tick_features(trades)
    end = np.ceil(secs).astype(int)
    grid = np.arange(end[0], end[-1] + 1)
    assert feats.height == grid.size
    last = np.array([prices[end <= g][-1] for g in grid])
    lp = np.log(last)
    for n in (1, 30, 600):
        np.testing.assert_allclose(feats[f"ret_{n}s"], lp - lp[np.maximum(np.arange(grid.size) - n, 0)], atol=1e-14)
    i = 400
    window = (end > grid[i] - 60) & (end <= grid[i])
    logs = np.log(sizes[window])
    row = feats.row(i, named=True)
    assert row["log_size_mean_60s"] == pytest.approx(logs.mean(), rel=1e-12)
    assert row["log_size_std_60s"] == pytest.approx(logs.std(), rel=1e-9)
    assert row["block_share_60s"] == pytest.approx(sizes[window][sizes[window] >= 10_000].sum() / sizes[window].sum())
    assert row["trade_rate_60s"] == pytest.approx(window.sum() / 60)
    assert row["log_volume_60s"] == pytest.approx(math.log1p(sizes[window].sum()))
    assert row["trade_rate_10s"] == pytest.approx(((end > grid[i] - 10) & (end <= grid[i])).sum() / 10)
    # no quotes at all: every quote feature is 0 and everything is finite
    for name in ("spread_bps", "microprice_bps", "book_imbalance", "mid_rv_60s", "quote_rate_60s"):
        assert (feats[name] == 0).all()
    assert np.isfinite(feats.select(FEATURE_NAMES).to_numpy()).all()


def test_book_features_and_mid_realised_vol():
    quotes = _quotes([(at(0.2), 10.0, 10.02), (at(1.5), 10.01, None), (at(2.5), 10.02, 10.04)])
    trades = _trades([(at(0.5), 10.01, 100), (at(3.0), 10.03, 100)])
    feats = tick_features(trades, quotes)
    r1, r2, r3 = (feats.filter(pl.col("ts") == at(s)).row(0, named=True) for s in (1, 2, 3))
    assert r1["spread_bps"] == pytest.approx(1e4 * 0.02 / 10.01)
    micro = (10.0 * 100 + 10.02 * 300) / 400
    assert r1["microprice_bps"] == pytest.approx(1e4 * (micro / 10.01 - 1))
    assert r1["book_imbalance"] == pytest.approx((300 - 100) / 400)
    r_a, r_b = math.log(10.015 / 10.01), math.log(10.03 / 10.015)
    assert r2["mid_rv_60s"] == pytest.approx(math.sqrt(r_a**2 / 2 * 252 * 23_400))
    assert r3["mid_rv_60s"] == pytest.approx(math.sqrt((r_a**2 + r_b**2) / 3 * 252 * 23_400))
    assert r3["quote_rate_60s"] == pytest.approx(3 / 3)


def test_sessions_are_not_bridged_overnight():
    day2 = OPEN + timedelta(days=1)
    trades = _trades(
        [(at(0.5), 10.0, 100), (at(3.5), 10.2, 100), (at(0.5, day2), 11.0, 100), (at(2.5, day2), 11.1, 100)]
    )
    feats = tick_features(trades)
    # day 1 runs to its close (the input goes on past it), day 2 from its first print; no night rows
    assert feats.height == 23_400 + 3
    assert feats.filter(pl.col("ts") < day2)["ts"].max() == CLOSE
    assert feats.filter(pl.col("ts") == CLOSE)["secs_to_close"][0] == 0.0
    first2 = feats.filter(pl.col("ts") == at(1, day2)).row(0, named=True)
    assert first2["ret_600s"] == 0.0 and first2["secs_since_open"] == 1.0  # the overnight gap is no return
    assert first2["trade_rate_60s"] == 1.0  # windows restart at the open


def test_a_later_tick_never_changes_an_earlier_row():
    rng = np.random.default_rng(9)
    secs = np.sort(rng.uniform(0, 300, 400))
    rows = [(at(float(s)), float(np.round(10 + rng.normal(0, 0.02), 2)), 100.0) for s in secs]
    quotes = _quotes([(at(float(s) - 0.1), 9.9 + 0.01 * k, 10.1 - 0.01 * k) for k, s in enumerate(secs[::10])])
    cut = at(150)
    base = tick_features(_trades(rows), quotes, until_ns=int(at(300).timestamp()) * 10**9)
    later = [(t, p * (1.3 if t > cut else 1.0), z * (5 if t > cut else 1)) for t, p, z in rows]
    changed = tick_features(
        _trades(later), quotes.filter(pl.col("ts") <= cut), until_ns=int(at(300).timestamp()) * 10**9
    )
    early = pl.col("ts") <= cut
    assert changed.filter(early).equals(base.filter(early))
    assert not changed.filter(~early).equals(base.filter(~early))


def test_rows_of_several_sources_are_refused():
    trades = _trades([(at(0.5), 10.0, 100)]).with_columns(pl.Series("source", ["a"]))
    both = pl.concat([trades, trades.with_columns(pl.lit("b").alias("source"))])
    with pytest.raises(TableError, match="several sources"):
        tick_features(both)
