"""Ticks to session-aware bars: OHLCV, VWAP, counts, bar-end stamps, gaps, closed sessions."""

from datetime import UTC, datetime

import polars as pl
import pytest

from lakehouse.reconcile.bars import aggregate_bars, build_bars

UTC = UTC
CAL = {"X:US": "XNYS"}


def _ticks(rows):
    return pl.DataFrame(
        rows,
        schema={
            "source": pl.String,
            "symbol_id": pl.String,
            "ts": pl.Datetime("ns", "UTC"),
            "price": pl.Float64,
            "size": pl.Float64,
        },
        orient="row",
    )


def test_minute_bars_ohlcv_vwap_stamped_at_end():
    t = _ticks(
        [
            ("a", "X:US", datetime(2013, 11, 29, 14, 30, 5, tzinfo=UTC), 10.0, 1.0),
            ("a", "X:US", datetime(2013, 11, 29, 14, 30, 50, tzinfo=UTC), 11.0, 3.0),
            ("a", "X:US", datetime(2013, 11, 29, 14, 30, 20, tzinfo=UTC), 9.0, 1.0),
        ]
    )
    bars = build_bars(t, "1m", CAL).bars
    row = bars.row(0, named=True)
    assert row["ts"] == datetime(2013, 11, 29, 14, 31, tzinfo=UTC)
    assert (row["open"], row["high"], row["low"], row["close"]) == (10.0, 11.0, 9.0, 11.0)
    assert row["volume"] == 5.0 and row["n_trades"] == 3
    assert row["vwap"] == pytest.approx((10 + 33 + 9) / 5)


def test_no_bar_in_a_closed_session_and_half_day_close():
    t = _ticks(
        [
            ("a", "X:US", datetime(2013, 11, 28, 15, 0, tzinfo=UTC), 10.0, 1.0),  # Thanksgiving
            ("a", "X:US", datetime(2013, 11, 29, 17, 59, 30, tzinfo=UTC), 11.0, 1.0),
            ("a", "X:US", datetime(2013, 11, 29, 19, 0, tzinfo=UTC), 12.0, 1.0),
        ]
    )  # after the 13:00 close
    built = build_bars(t, "1h", CAL)
    assert built.bars["ts"].to_list() == [datetime(2013, 11, 29, 18, 0, tzinfo=UTC)]  # clipped to the early close
    assert built.outside["n_trades"].item() == 2
    daily = build_bars(t, "1d", CAL).bars
    assert daily["ts"].to_list() == [datetime(2013, 11, 29, 18, 0, tzinfo=UTC)]


def test_gaps_are_reported_as_runs():
    t = _ticks(
        [
            ("a", "X:US", datetime(2013, 11, 29, 14, 30, 1, tzinfo=UTC), 10.0, 1.0),
            ("a", "X:US", datetime(2013, 11, 29, 14, 34, 1, tzinfo=UTC), 10.0, 1.0),
            ("a", "X:US", datetime(2013, 11, 29, 17, 59, 1, tzinfo=UTC), 10.0, 1.0),
        ]
    )
    gaps = build_bars(t, "1m", CAL).gaps
    assert gaps.select("start", "n_bars").rows() == [
        (datetime(2013, 11, 29, 14, 31, tzinfo=UTC), 3),
        (datetime(2013, 11, 29, 14, 35, tzinfo=UTC), 204),
    ]


def test_minute_bars_roll_up_to_hours_like_ticks_do():
    t = _ticks(
        [
            ("a", "X:US", datetime(2013, 11, 29, 14, 30 + i // 60, i % 60, tzinfo=UTC), 10.0 + i % 7, 1.0)
            for i in range(0, 1800, 7)
        ]
    )
    direct = build_bars(t, "1h", CAL).bars
    rolled = aggregate_bars(build_bars(t, "1m", CAL).bars, "1h", CAL).bars
    cols = ["ts", "open", "high", "low", "close", "volume", "n_trades"]
    assert rolled.select(cols).equals(direct.select(cols))
