"""The gate on real LEAN AAPL bars: it flags LEAN's known bad values and nothing that is real.

Finding (checked on the file): the shared README says LEAN's AAPL daily volume on 2021-03-31 is
1,090,190,525,848, but ``daily/aapl.zip`` holds 109,019,052 on that day; the file's last line has
no trailing newline, and 1090190525848 is that volume with a line count "5848" glued to it. The
real file's row is therefore sane (and must pass); the documented value is tested by injecting it.
What the file does hold are three daily bars whose LOW is off by a factor of ~10-17 (2009-09-21,
2010-08-31, 2011-01-03), which the jump expectation catches.
"""

from __future__ import annotations

from datetime import date

import polars as pl

from lakehouse.quality import gate
from lakehouse.tables import BRONZE_QUARANTINE, SILVER_BARS

JUMP = "expectation expect_column_values_to_be_between failed on _jump_z"
VOLUME = "expectation expect_column_values_to_be_between failed on volume"
EXCESS = "expectation expect_column_values_to_be_between failed on _volume_excess"
BAD_LOWS = {date(2009, 9, 21), date(2010, 8, 31), date(2011, 1, 3)}


def _splits(lean_usa, lean_splits) -> pl.DataFrame:
    return lean_splits(lean_usa / "factor_files" / "aapl.csv", "AAPL:US")


def _session(ts: pl.Expr) -> pl.Expr:
    return (ts - pl.duration(nanoseconds=1)).dt.convert_time_zone("America/New_York").dt.date()


def _flagged(lake, bars: pl.DataFrame, run_id: str) -> pl.DataFrame:
    q = lake.read(BRONZE_QUARANTINE).filter(pl.col("batch_id") == run_id)
    rows = bars.with_row_index("row", offset=1).with_columns(pl.col("row").cast(pl.Int64))
    return q.join(rows, on="row").with_columns(_session(pl.col("ts")).alias("session"))


def test_daily_aapl_flags_the_bad_lows_and_passes_the_rest(lake, clock, lean_usa, lean_bars, lean_splits, to_silver):
    bars = to_silver(lean_bars(lean_usa / "daily" / "aapl.zip", "AAPL:US", "1d"))
    passed, result = gate(lake, SILVER_BARS, bars, "lean-daily", clock, splits=_splits(lean_usa, lean_splits))
    flagged = _flagged(lake, bars, "lean-daily")
    assert set(flagged.get_column("session")) == BAD_LOWS
    assert flagged.get_column("reason").unique().to_list() == [JUMP]
    assert passed.height == bars.height - 3 == 5846
    last = passed.filter(_session(pl.col("ts")) == date(2021, 3, 31))
    assert last.get_column("volume").to_list() == [109_019_052.0]


def test_without_split_knowledge_raw_split_days_count_as_jumps(lake, clock, lean_usa, lean_bars, to_silver):
    bars = to_silver(lean_bars(lean_usa / "daily" / "aapl.zip", "AAPL:US", "1d"))
    gate(lake, SILVER_BARS, bars, "lean-daily-raw", clock)
    sessions = set(_flagged(lake, bars, "lean-daily-raw").get_column("session"))
    # the 7:1 split of 2014 is an unexplained jump on raw prices; the 2:1 (2000, 2005) and 4:1
    # (2020, after a weekend) splits stay within 40 sigma of their era's volatility
    assert sessions == BAD_LOWS | {date(2014, 6, 9)}


def test_the_documented_absurd_volume_is_flagged(lake, clock, lean_usa, lean_bars, lean_splits, to_silver):
    bars = to_silver(lean_bars(lean_usa / "daily" / "aapl.zip", "AAPL:US", "1d"))
    day = _session(pl.col("ts")) == date(2021, 3, 31)
    bars = bars.with_columns(pl.when(day).then(1_090_190_525_848.0).otherwise(pl.col("volume")).alias("volume"))
    gate(lake, SILVER_BARS, bars, "lean-volume", clock, splits=_splits(lean_usa, lean_splits))
    flagged = _flagged(lake, bars, "lean-volume")
    on_day = set(flagged.filter(pl.col("session") == date(2021, 3, 31)).get_column("reason"))
    assert on_day == {VOLUME, EXCESS}  # above the absolute cap and ~10,000x the 20-day median
    assert flagged.height == 5 and flagged.get_column("row").n_unique() == 4


def test_minute_bar_mixing_pre_and_post_split_prices_is_caught(
    lake, clock, lean_usa, lean_bars, lean_splits, to_silver
):
    days = ["20140605", "20140606", "20140609"]
    bars = to_silver(
        pl.concat([lean_bars(lean_usa / "minute" / "aapl" / f"{d}_trade.zip", "AAPL:US", "1m", d) for d in days])
    )
    passed, result = gate(lake, SILVER_BARS, bars, "lean-minute", clock, splits=_splits(lean_usa, lean_splits))
    flagged = _flagged(lake, bars, "lean-minute")
    assert flagged.get_column("reason").to_list() == [JUMP]
    bar = flagged.row(0, named=True)
    # LEAN's 04:00 bar (ending 04:01 New York): open 645.57 before the split, low 92.23 after it
    assert (bar["open"], bar["low"]) == (645.57, 92.23)
    assert bar["ts"].strftime("%Y-%m-%d %H:%M") == "2014-06-09 08:01"
    assert passed.height == bars.height - 1
