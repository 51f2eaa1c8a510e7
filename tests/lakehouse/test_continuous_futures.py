"""Continuous futures: roll schedules and adjustments, checked against LEAN's own ES factors."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import polars as pl
import pytest

from lakehouse.futures_continuous import continuous_series, roll_prices
from lakehouse.futures_roll import roll_schedule
from lakehouse.sources.lean_reference import Params, batches

UTC = UTC


@pytest.fixture(scope="module")
def es(shared_data):
    params = Params(
        root=shared_data / "lean",
        equities=False,
        futures=["cme/es"],
        kinds=["trade", "openinterest"],
        resolutions=["daily", "minute"],
        minute_from=date(2013, 12, 18),
        minute_to=date(2013, 12, 20),
    )
    frames: dict[str, list[pl.DataFrame]] = {}
    for b in batches(params):
        for c in b.chunks:
            frames.setdefault(c.table.name, []).append(c.data.drop("_row", "_raw", strict=False))
    return (pl.concat(frames["bars"]), pl.concat(frames["open_interest"]), pl.concat(frames["futures_contracts"]))


def _lean_rows(shared_data, mode: int) -> list[dict]:
    path = shared_data / "lean/future/cme/factor_files/es.csv"
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in rows if r["DataMappingMode"] == mode]


def _lean_roll(shared_data, mode: int, old_last_day: str) -> tuple[float, float]:
    """LEAN's gap and ratio for the roll whose old contract ends on ``old_last_day`` (front-month scales)."""
    rows = _lean_rows(shared_data, mode)
    i = next(k for k, r in enumerate(rows) if r["Date"].startswith(old_last_day))
    this, nxt = rows[i], rows[i + 1]
    gap = this["BackwardsPanamaCanalScale"][0] - nxt["BackwardsPanamaCanalScale"][0]
    ratio = this["BackwardsRatioScale"][0] / nxt["BackwardsRatioScale"][0]
    return gap, ratio


def _lean_map_date(shared_data, mode: int, after: str) -> date:
    lines = (shared_data / "lean/future/cme/map_files/es.csv").read_text().splitlines()
    dates = sorted(line.split(",")[0] for line in lines if line.endswith(f",{mode}") and line.split(",")[0] > after)
    return datetime.strptime(dates[0], "%Y%m%d").date()


def test_open_interest_roll_matches_lean(es, shared_data):
    bars, oi, contracts = es
    sched = roll_schedule(contracts, "open_interest", open_interest=oi, bars=bars.filter(pl.col("kind") == "trade"))
    roll = sched.filter(pl.col("contract") == "ESH14:CME").row(0, named=True)
    lean_last_old_day = _lean_map_date(shared_data, 2, "20131101")  # LEAN's OpenInterest mapping (mode 2)
    assert lean_last_old_day == date(2013, 12, 17)
    assert roll["start"] == datetime(2013, 12, 18, tzinfo=UTC)  # first instant of the new contract
    assert roll["known_at"] == datetime(2013, 12, 18, 7, 7, tzinfo=UTC)  # the OI report that showed the crossing
    r = (
        roll_prices(bars.filter(pl.col("kind") == "trade"), sched)
        .filter(pl.col("contract") == "ESH14:CME")
        .row(0, named=True)
    )
    gap, ratio = _lean_roll(shared_data, 2, "2013-12-17")
    assert (r["p_old"], r["p_new"]) == (1780.25, 1773.75)
    assert r["gap"] == pytest.approx(gap, abs=1e-9) == -6.5
    assert r["ratio"] == pytest.approx(ratio, rel=1e-12)


def test_last_trade_rule_matches_lean_roll_date(es, shared_data):
    bars, oi, contracts = es
    trade = bars.filter(pl.col("kind") == "trade")
    sched = roll_schedule(contracts, "days_before:0:last_trade", bars=trade)
    start = sched.filter(pl.col("contract") == "ESH14:CME")["start"].item()
    assert start.date() == _lean_map_date(shared_data, 0, "20131101").replace(day=20)  # LEAN: old through 12-19
    r = roll_prices(trade, sched).filter(pl.col("contract") == "ESH14:CME").row(0, named=True)
    gap, _ = _lean_roll(shared_data, 0, "2013-12-19")
    # LEAN took ESH14's last trade before midnight (1802.50, from a 12-19 file not in the sample); the
    # 00:00 bar opens one tick higher.
    assert abs(r["gap"] - gap) <= 0.25


def test_continuous_daily_series_methods(es):
    bars, oi, contracts = es
    out = {m: continuous_series(bars, oi, contracts, "open_interest", m, tf="1d") for m in ("none", "panama", "ratio")}
    none, panama, ratio = out["none"], out["panama"], out["ratio"]
    dec = none.filter(pl.col("ts").dt.date().is_between(date(2013, 12, 15), date(2013, 12, 21)))
    assert dec.select("ts", "contract", "roll").rows()[:4] == [
        (datetime(2013, 12, 16, tzinfo=UTC), "ESZ13:CME", False),
        (datetime(2013, 12, 17, tzinfo=UTC), "ESZ13:CME", False),
        (datetime(2013, 12, 18, tzinfo=UTC), "ESZ13:CME", False),
        (datetime(2013, 12, 19, tzinfo=UTC), "ESH14:CME", True),
    ]
    rolls = none.filter("roll").select("ts", "contract").rows()
    assert rolls[0] == (datetime(2013, 12, 19, tzinfo=UTC), "ESH14:CME")  # then a jump to the 2020 stubs
    assert panama.filter("roll").select("ts", "contract").rows() == rolls
    old = panama.filter(pl.col("contract") == "ESZ13:CME")
    raw_old = none.filter(pl.col("contract") == "ESZ13:CME")
    assert ((old["close"] - raw_old["close"]) == -6.5).all() and (old["adjust"] == -6.5).all()
    assert ratio.filter(pl.col("contract") == "ESZ13:CME")["adjust"].to_list()[0] == pytest.approx(1773.75 / 1780.25)
    new = panama.filter(pl.col("contract") == "ESH14:CME")
    assert (new["adjust"] == 0).all()
    assert old["known_at"].min() >= datetime(2013, 12, 18, 7, 7, tzinfo=UTC)  # back-adjusted once the roll is known


def test_as_of_before_the_signal_keeps_the_old_contract(es):
    bars, oi, contracts = es
    as_of = datetime(2013, 12, 18, 6, 0, tzinfo=UTC)
    series = continuous_series(bars, oi, contracts, "open_interest", "panama", as_of, tf="1m")
    assert series["ts"].max() <= as_of and set(series["contract"].unique().to_list()) == {"ESZ13:CME"}
    assert (series["adjust"] == 0).all()
    later = continuous_series(
        bars, oi, contracts, "open_interest", "panama", datetime(2013, 12, 18, 8, 0, tzinfo=UTC), tf="1m"
    )
    assert set(later["contract"].unique().to_list()) == {"ESH14:CME"}  # the 18th is ESH14 once the OI report is out
    assert later["known_at"].min() == datetime(2013, 12, 18, 7, 7, tzinfo=UTC)


def test_synthetic_panama_and_ratio():
    ts = [datetime(2024, 1, d, tzinfo=UTC) for d in (2, 3, 4, 5)]
    bars = pl.DataFrame(
        {
            "ts": ts * 2,
            "tf": ["1d"] * 8,
            "symbol_id": ["AAH24:X"] * 4 + ["AAM24:X"] * 4,
            "open": [100.0, 101, 102, 103, 110, 111, 112, 113],
            "high": [100.0, 101, 102, 103, 110, 111, 112, 113],
            "low": [100.0, 101, 102, 103, 110, 111, 112, 113],
            "close": [100.0, 101, 102, 103, 110, 111, 112, 113],
            "volume": [10.0, 10, 1, 1, 1, 5, 20, 20],
        }
    )
    contracts = pl.DataFrame(
        {
            "root": ["AA", "AA"],
            "contract": ["AAH24:X", "AAM24:X"],
            "last_trade": [date(2024, 3, 15), date(2024, 6, 21)],
            "first_notice": [None, None],
        },
        schema_overrides={"first_notice": pl.Date},
    )
    panama = continuous_series(bars, None, contracts, "volume", "panama", tf="1d", symbol_id="AA:X")
    # The bar ending 01-04 (day 01-03) shows AAM24 volume 20 > 1: the roll takes effect at 01-04 00:00,
    # so only bars ending after it (01-05) are AAM24; the gap is measured on that bar's opens: +10.
    assert panama["contract"].to_list() == ["AAH24:X", "AAH24:X", "AAH24:X", "AAM24:X"]
    assert panama["roll"].to_list() == [False, False, False, True]
    assert panama["close"].to_list() == [110.0, 111.0, 112.0, 113.0]
    assert panama["known_at"][0] == datetime(2024, 1, 4, tzinfo=UTC)
    ratio = continuous_series(bars, None, contracts, "volume", "ratio", tf="1d", symbol_id="AA:X")
    assert ratio["close"].to_list() == pytest.approx([100 * 113 / 103, 101 * 113 / 103, 102 * 113 / 103, 113])
