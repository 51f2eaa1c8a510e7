"""Corporate actions: AAPL's 7:1 split of 2014-06-09, point-in-time adjustment, LEAN vs Yahoo."""

from __future__ import annotations

import io
import zipfile
from datetime import UTC, date, datetime

import numpy as np
import polars as pl
import pytest

from lakehouse.adjust import adjusted_bars, split_consistency_flags
from lakehouse.corporate_actions import events_from_factor_rows, yahoo_adjustment_frame, yahoo_dividends, yahoo_splits
from lakehouse.sources.lean_reference_parse import parse_factor_rows

NY = "America/New_York"


def _lean_equity_bars(path, tf: str, file_date: date | None = None) -> pl.DataFrame:
    """Raw LEAN equity bars (prices * 10000, New York time, stamped at start) -> bars stamped at END."""
    with zipfile.ZipFile(path) as zf:
        text = zf.read(zf.namelist()[0]).decode()
    f = pl.read_csv(io.StringIO(text), has_header=False, new_columns=["t", "o", "h", "l", "c", "v"], infer_schema=False)
    if file_date is None:  # daily: the session closes at 16:00
        start = pl.col("t").str.strptime(pl.Datetime("ns"), "%Y%m%d %H:%M") + pl.duration(hours=16)
        length = pl.duration(minutes=0)
    else:
        start = pl.lit(file_date).cast(pl.Datetime("ns")) + pl.duration(milliseconds=pl.col("t").cast(pl.Int64))
        length = pl.duration(minutes=1)
    return f.select(
        (start + length)
        .dt.replace_time_zone(NY)
        .dt.convert_time_zone("UTC")
        .cast(pl.Datetime("ns", "UTC"))
        .alias("ts"),
        pl.lit("AAPL:US").alias("symbol_id"),
        pl.lit(tf).alias("tf"),
        *[(pl.col(c).cast(pl.Float64) / 10000).alias(n) for c, n in zip("ohlc", ["open", "high", "low", "close"])],
        pl.col("v").cast(pl.Float64).alias("volume"),
    )


@pytest.fixture(scope="module")
def aapl(shared_data):
    lean = shared_data / "lean/equity/usa"
    rows, _ = parse_factor_rows((lean / "factor_files/aapl.csv").read_text(), "aapl.csv")
    actions = events_from_factor_rows(rows, "AAPL:US").drop("_row", "_raw")
    daily = _lean_equity_bars(lean / "daily/aapl.zip", "1d")
    minute = pl.concat(
        [
            _lean_equity_bars(lean / f"minute/aapl/{d:%Y%m%d}_trade.zip", "1m", d)
            for d in (date(2014, 6, 5), date(2014, 6, 6), date(2014, 6, 9))
        ]
    )
    return actions, daily, minute


def _close(frame: pl.DataFrame, day: date) -> float:
    return frame.filter(pl.col("ts").dt.convert_time_zone(NY).dt.date() == day)["close"].item()


def test_raw_and_adjusted_daily_across_the_split(aapl):
    actions, daily, _ = aapl
    assert _close(daily, date(2014, 6, 6)) == 645.57 and _close(daily, date(2014, 6, 9)) == 93.70
    raw_ret = np.log(93.70 / 645.57)
    assert raw_ret < -1.9
    adj = adjusted_bars(daily, actions)
    assert (adj["adjustment"] == "adjusted").all()
    adj_ret = np.log(_close(adj, date(2014, 6, 9)) / _close(adj, date(2014, 6, 6)))
    assert abs(adj_ret) < 0.05
    # LEAN's own scale factor for 2014-06-06 is price_factor * split_factor = 0.9011818 * 0.0357143.
    assert _close(adj, date(2014, 6, 6)) == pytest.approx(645.57 * 0.9011818 * 0.0357143, rel=1e-5)
    assert _close(adj, date(2021, 3, 1)) == _close(daily, date(2021, 3, 1))  # after the last action: raw


def test_adjusted_minute_series_is_continuous_across_the_split(aapl):
    actions, _, minute = aapl
    regular = minute.filter(pl.col("ts").dt.convert_time_zone(NY).dt.hour().is_between(10, 15))
    adj = adjusted_bars(regular, actions).sort("ts")
    rets = np.diff(np.log(adj["close"].to_numpy()))
    raw = np.diff(np.log(regular.sort("ts")["close"].to_numpy()))
    assert raw.min() < -1.9 and np.abs(rets).max() < 0.03


def test_point_in_time_adjustment(aapl):
    actions, daily, _ = aapl
    window = daily.filter(pl.col("ts").dt.date().is_between(date(2014, 6, 2), date(2014, 6, 10)))
    before = adjusted_bars(window, actions, as_of=datetime(2014, 6, 6, 19, 0, tzinfo=UTC))
    assert _close(before, date(2014, 6, 6)) == 645.57  # the split is not known yet: unadjusted history
    after = adjusted_bars(window, actions, as_of=datetime(2014, 6, 6, 20, 0, tzinfo=UTC))
    assert _close(after, date(2014, 6, 6)) == pytest.approx(645.57 / 7)
    assert after.filter(pl.col("ts").dt.date() == date(2014, 6, 6))["known_at"].item() == datetime(
        2014, 6, 6, 20, tzinfo=UTC
    )


def test_split_flags_catch_the_mixed_premarket_bar(aapl):
    actions, _, minute = aapl
    flagged = split_consistency_flags(minute, actions).filter("split_flag")
    first = flagged.sort("ts").row(0, named=True)
    assert first["ts"] == datetime(2014, 6, 9, 8, 1, tzinfo=UTC)  # the 04:00 ET bar: 645.57 -> 92.23
    assert "spans" in first["split_reason"]
    assert flagged.height <= 3  # the regular bars of both days are consistent with their regime


def test_split_flags_on_synthetic_bars():
    bars = pl.DataFrame(
        {
            "symbol_id": ["X:US"] * 4,
            "ts": [datetime(2020, 1, d, 21, tzinfo=UTC) for d in (2, 3, 6, 7)],
            "open": [100.0, 100.0, 95.0, 25.0],
            "high": [101.0, 101.0, 96.0, 25.5],
            "low": [99.0, 99.0, 94.0, 24.5],
            "close": [100.0, 100.0, 95.0, 25.0],
        }
    )
    actions = pl.DataFrame(
        {
            "symbol_id": ["X:US"],
            "ex_date": [date(2020, 1, 6)],
            "kind": ["split"],
            "ratio": [4.0],
            "amount": [None],
            "known_at": [datetime(2020, 1, 3, 21, tzinfo=UTC)],
        },
        schema_overrides={"amount": pl.Float64},
    )
    out = split_consistency_flags(bars, actions)
    assert out["split_flag"].to_list() == [False, False, True, False]
    assert out["split_reason"][2] == "pre-split price on or after the split's ex-date"


def test_lean_and_yahoo_dividends_agree(aapl, shared_data):
    actions, daily, _ = aapl
    yahoo = yahoo_adjustment_frame(shared_data / "mplfinance/yahoofinance-AAPL-20040819-20180120.csv")
    ydiv = yahoo_dividends(yahoo, "AAPL:US")
    lean = actions.filter(
        (pl.col("kind") == "dividend") & pl.col("ex_date").is_between(date(2012, 1, 1), date(2018, 1, 19))
    )
    assert lean.height == ydiv.filter(pl.col("ex_date") >= date(2012, 1, 1)).height == 22
    joined = lean.join_asof(
        ydiv.sort("ex_date").select("ex_date", pl.col("amount").alias("y_amount"), pl.col("ex_date").alias("y_date")),
        on="ex_date",
        strategy="nearest",
    )
    assert (joined["ex_date"] == joined["y_date"]).all()
    # Yahoo's amounts are in post-7:1 units before 2014-06-09.
    scale = pl.when(pl.col("ex_date") < date(2014, 6, 9)).then(7.0).otherwise(1.0)
    rel = joined.select(((pl.col("y_amount") * scale) / pl.col("amount") - 1).abs().max()).item()
    assert rel < 0.02
    ysplit = yahoo_splits(
        yahoo, daily.select(pl.col("ts").dt.convert_time_zone(NY).dt.date().alias("date"), "close"), "AAPL:US"
    )
    assert ysplit.select("ex_date", "ratio").rows() == [(date(2005, 2, 28), 2.0), (date(2014, 6, 9), 7.0)]
