"""Freshness per (symbol, source): closed sessions are never stale; stale time matches injected faults."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
import pytest

from core.errors import ConfigError
from lakehouse.freshness import FreshnessThresholds, change_times, freshness, stale_rate, stale_summary, write_freshness
from lakehouse.quality import gate
from lakehouse.tables import SILVER_FRESHNESS


def utc(*a) -> datetime:
    return datetime(*a, tzinfo=UTC)


OBS = pl.DataFrame(
    {
        "symbol_id": ["AAPL:US", "AAPL:US", "BTCUSD:CRYPTO", "EURUSD:FX", "AAPL:US"],
        "source": ["a", "b", "x", "y", "a"],
        # Friday 2024-01-05: AAPL "a" at 15:59 New York, "b" at 13:00; FX at 16:30 New York (closes 17:00)
        "ts": [
            utc(2024, 1, 5, 20, 59),
            utc(2024, 1, 5, 18, 0),
            utc(2024, 1, 6, 10, 0),
            utc(2024, 1, 5, 21, 30),
            utc(2024, 1, 8, 16, 0),
        ],  # after as_of below: ignored (point in time)
    }
)


def test_a_closed_session_is_not_stale():
    fresh = freshness(OBS, utc(2024, 1, 6, 12, 0)).sort("source")
    by = {r["source"]: r for r in fresh.iter_rows(named=True)}
    assert by["a"]["last_ts"] == utc(2024, 1, 5, 20, 59)  # the Monday row is after as_of
    assert by["a"]["age_ms"] == pytest.approx(15 * 3600e3 + 60e3)
    assert by["a"]["open_age_ms"] == pytest.approx(60e3) and not by["a"]["stale"]
    assert by["b"]["open_age_ms"] == pytest.approx(3 * 3600e3) and by["b"]["stale"]
    assert by["y"]["open_age_ms"] == pytest.approx(30 * 60e3) and by["y"]["stale"]  # FX open until 17:00 NY
    assert by["x"]["open_age_ms"] == by["x"]["age_ms"] and by["x"]["stale"]  # crypto never closes
    assert stale_summary(fresh)["pair_stale_rate"] == pytest.approx(0.75)


def test_thresholds_by_timeframe_and_asset_class():
    obs = pl.DataFrame(
        {
            "symbol_id": ["AAPL:US", "BTCUSD:CRYPTO"],
            "source": ["a", "x"],
            "tf": ["1d", None],
            "ts": [utc(2024, 1, 5, 21, 0), utc(2024, 1, 6, 10, 0)],
        }
    )
    th = FreshnessThresholds(by_asset_class={"crypto": 3 * 3600.0})
    fresh = freshness(obs, utc(2024, 1, 8, 16, 0), th).sort("source")
    assert fresh.get_column("threshold_ms").to_list() == [2 * 86400e3, 3 * 3600e3]
    assert fresh.get_column("stale").to_list() == [False, True]


def test_unknown_symbol_names_the_symbol():
    obs = OBS.with_columns(pl.lit("NOPE:XX").alias("symbol_id"))
    with pytest.raises(ConfigError, match="NOPE:XX"):
        freshness(obs, utc(2024, 1, 6))


def test_stale_rate_counts_open_time_past_the_threshold():
    samples = pl.DataFrame(
        {
            "symbol_id": ["AAPL:US"] * 3,
            "source": ["a"] * 3,
            "ts": [utc(2024, 1, 8, 14, 30), utc(2024, 1, 8, 15, 0), utc(2024, 1, 8, 20, 0)],
        }
    )
    rate = stale_rate(samples, utc(2024, 1, 8, 14, 30), utc(2024, 1, 8, 23, 0))
    row = rate.row(0, named=True)
    assert row["open_ms"] == pytest.approx(6.5 * 3600e3)  # the window runs past the close: open time only
    assert row["stale_ms"] == pytest.approx((25 + 295 + 55) * 60e3)
    assert stale_summary(freshness(samples, utc(2024, 1, 8, 23, 0)), rate)["time_stale_fraction"] == pytest.approx(
        375 / 390
    )


def test_freshness_rows_pass_their_suite_and_upsert_idempotently(lake, clock):
    fresh = freshness(OBS, utc(2024, 1, 6, 12, 0))
    passed, result = gate(lake, SILVER_FRESHNESS, fresh, "fresh-1", clock)
    assert result.success and passed.height == 4
    write_freshness(lake, passed)
    write_freshness(lake, passed)
    stored = lake.read(SILVER_FRESHNESS).sort("symbol_id", "source")
    assert stored.height == 4 and stored.get_column("stale").to_list() == [False, True, True, True]


def test_simulator_stale_and_gap_windows_show_up():
    from lakehouse.sources import simulator as sim

    params = sim.SimParams(symbols=["SIM1:SIM"], n_days=1, trades_per_day=20_000, tables=["quotes", "sim_events"])
    frames: dict[str, list[pl.DataFrame]] = {}
    for batch in sim.batches(params):
        for chunk in batch.chunks:
            frames.setdefault(chunk.table.name, []).append(chunk.data)
    quotes, events = pl.concat(frames["quotes"]), pl.concat(frames["sim_events"])
    threshold_s = 20.0
    rate = stale_rate(
        change_times(quotes, ["bid", "ask", "bid_size", "ask_size"]),
        utc(2026, 1, 5, 14, 30),
        utc(2026, 1, 5, 21, 0),
        FreshnessThresholds(default_s=threshold_s),
    )
    injected = (
        events.filter(pl.col("kind").is_in(["gap_start", "stale_start"]))
        .with_columns(pl.col("detail").str.json_path_match("$.duration_ms").cast(pl.Float64).alias("ms"))
        .group_by(pl.col("vendor").alias("source"))
        .agg((pl.col("ms") - threshold_s * 1e3).clip(lower_bound=0).sum().alias("expected_ms"))
    )
    both = rate.join(injected, on="source", how="left").with_columns(pl.col("expected_ms").fill_null(0.0))
    assert both.height == len(params.vendors)
    for r in both.iter_rows(named=True):  # detected >= injected, plus at most 30 s of natural quiet
        assert r["expected_ms"] - 1.0 <= r["stale_ms"] <= r["expected_ms"] + 30e3, r
    assert both.get_column("expected_ms").sum() > 0
