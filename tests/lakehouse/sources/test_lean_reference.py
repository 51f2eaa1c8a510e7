"""LEAN reference adapter: factor/map files, futures bars and open interest, contract definitions."""

from __future__ import annotations

from datetime import UTC, date, datetime

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lakehouse.corporate_actions import events_from_factor_rows
from lakehouse.futures_contracts import contract_dates, read_symbol_properties
from lakehouse.ingest import Batch, Chunk, Ingestor
from lakehouse.security_master import known_symbols
from lakehouse.sources import lean_reference_parse as parse
from lakehouse.sources.lean_reference import Params, batches
from lakehouse.storage import Lake
from lakehouse.tables import (
    BRONZE_BARS,
    BRONZE_CORPORATE_ACTIONS,
    BRONZE_FUTURES_CONTRACTS,
    BRONZE_OPEN_INTEREST,
    BRONZE_SYMBOL_MAP,
)


def _utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_aapl_factor_file_gives_split_and_dividends(shared_data):
    path = shared_data / "lean/equity/usa/factor_files/aapl.csv"
    rows, rejected = parse.parse_factor_rows(path.read_text(), str(path))
    assert rejected == [] and rows.height == 41
    ev = events_from_factor_rows(rows, "AAPL:US")
    splits = ev.filter(pl.col("kind") == "split").select("ex_date", "ratio").rows()
    assert splits == [
        (date(2000, 6, 21), 2.0),
        (date(2005, 2, 28), 2.0),
        (date(2014, 6, 9), 7.0),
        (date(2020, 8, 31), 4.0),
    ]
    split = ev.filter(pl.col("ex_date") == date(2014, 6, 9)).row(0, named=True)
    assert split["known_at"] == _utc(2014, 6, 6, 20)  # the 2014-06-06 close (16:00 New York)
    div = ev.filter((pl.col("kind") == "dividend") & (pl.col("ex_date") == date(2014, 5, 8))).row(0, named=True)
    assert abs(div["amount"] - 3.29) < 0.005  # AAPL paid $3.29 (pre-split) ex 2014-05-08
    last = ev.filter(pl.col("kind") == "dividend").sort("ex_date").row(-1, named=True)
    assert last["ex_date"] == date(2021, 2, 5) and abs(last["amount"] - 0.205) < 0.001


def test_map_file_rows(shared_data):
    path = shared_data / "lean/equity/usa/map_files/googl.csv"
    rows, rejected = parse.parse_map_rows(path.read_text(), str(path))
    assert rejected == []
    assert rows.select("date", "ticker").rows() == [
        (date(2004, 8, 19), "GOOG"),
        (date(2014, 4, 2), "GOOG"),
        (date(2050, 12, 31), "GOOGL"),
    ]


def test_contract_rules_and_properties(shared_data):
    es = contract_dates("ES", 2013, 12, "CMES")
    assert es.last_trade == date(2013, 12, 20) and es.first_notice is None
    gc = contract_dates("GC", 2013, 12, "COMEX")
    assert gc.last_trade == date(2013, 12, 27) and gc.first_notice == date(2013, 11, 29)
    props = shared_data / "lean/symbol-properties/symbol-properties-database.csv"
    assert read_symbol_properties(props, "cme", "ES") == (50.0, 0.25)
    assert read_symbol_properties(props, "comex", "GC") == (100.0, 0.1)


def test_ingest_equities_and_es_futures(shared_data, lake, clock):
    params = Params(
        root=shared_data / "lean",
        tickers=["aapl", "googl"],
        futures=["cme/es"],
        resolutions=["daily", "minute"],
        minute_from=date(2013, 12, 18),
        minute_to=date(2013, 12, 18),
    )
    ingestor = Ingestor(lake, clock, known_symbols())
    report = ingestor.run(batches(params))
    assert report.failures == [] and report.balanced and report.total("quarantined") == 0
    bars = lake.read(BRONZE_BARS)
    daily = bars.filter((pl.col("symbol_id") == "ESZ13:CME") & (pl.col("tf") == "1d") & (pl.col("kind") == "trade"))
    oct8 = daily.filter(pl.col("ts") == _utc(2013, 10, 9)).row(0, named=True)  # the 2013-10-08 bar ends at midnight
    assert abs(oct8["close"] - 1646.5) < 10
    minute = bars.filter((pl.col("symbol_id") == "ESH14:CME") & (pl.col("tf") == "1m") & (pl.col("kind") == "trade"))
    assert minute["ts"].min() == _utc(2013, 12, 18, 0, 1)  # LEAN's 00:00 UTC bar, stamped at its end
    busiest = minute.sort("volume").row(-1, named=True)["ts"]
    assert busiest.hour in (19, 20, 21)  # the 14:00 ET FOMC statement: files are in UTC, not Chicago time
    assert {"bid", "ask", "trade"} <= set(bars["kind"].unique().to_list())
    oi = lake.read(BRONZE_OPEN_INTEREST)
    assert oi.filter(pl.col("symbol_id") == "ESZ13:CME").height > 0
    contracts = lake.read(BRONZE_FUTURES_CONTRACTS)
    assert contracts.filter(pl.col("contract") == "ESZ13:CME")["last_trade"].item() == date(2013, 12, 20)
    assert lake.read(BRONZE_CORPORATE_ACTIONS).filter(pl.col("symbol_id") == "AAPL:US").height == 39
    assert lake.read(BRONZE_SYMBOL_MAP).filter(pl.col("symbol_id") == "GOOGL:US").height == 3
    again = ingestor.run(batches(params))
    assert again.total("rows_written") == 0 and again.balanced


# ---- fuzz ---------------------------------------------------------------------------------------
_cell = st.one_of(
    st.from_regex(r"-?\d{1,9}(\.\d{1,7})?", fullmatch=True),
    st.sampled_from(["", "inf", "1e+07", "x", "0"]),
    st.dates(date(1990, 1, 1), date(2060, 1, 1)).map(lambda d: d.strftime("%Y%m%d")),
)
_line = st.lists(_cell, min_size=0, max_size=6).map(",".join)
_text = st.lists(_line, max_size=25).map("\n".join)


def _nonblank(text: str) -> int:
    return sum(1 for line in text.splitlines() if line.strip())


@settings(max_examples=60, deadline=None)
@given(_text)
def test_fuzz_factor_and_map_parsers_account_for_every_line(text):
    rows, rejected = parse.parse_factor_rows(text, "fuzz.csv")
    assert rows.height + len(rejected) == _nonblank(text)
    events = events_from_factor_rows(rows, "FUZZ:US")
    assert set(events["kind"].unique().to_list()) <= {"split", "dividend"}
    assert (events.filter(pl.col("kind") == "split")["ratio"] > 0).all()
    rows, rejected = parse.parse_map_rows(text, "fuzz.csv")
    assert rows.height + len(rejected) == _nonblank(text)


@settings(max_examples=60, deadline=None)
@given(_text)
def test_fuzz_future_parsers_account_for_every_line(text):
    for fn in (parse.parse_future_trade_bars, parse.parse_open_interest):
        for tf, d in (("1m", date(2013, 12, 18)), ("1d", None)):
            rows, rejected = fn(text, "fuzz.csv", "ESZ13:CME", tf, d)
            assert rows.height + len(rejected) == _nonblank(text)
    rows, rejected = parse.parse_future_quote_bars(text, "fuzz.csv", "ESZ13:CME", "1h")
    assert rows.select("_row").n_unique() + len(rejected) <= _nonblank(text)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(_text)
def test_fuzz_factor_file_ingest_balances(tmp_path_factory, clock, text):
    lake = Lake(str(tmp_path_factory.mktemp("lake")))
    rows, rejected = parse.parse_factor_rows(text, "fuzz.csv")
    chunk = Chunk(BRONZE_CORPORATE_ACTIONS, events_from_factor_rows(rows, "AAPL:US"), rejected)
    report = Ingestor(lake, clock).run([Batch("lean_reference", "fuzz.csv", "fuzz", [chunk])])
    assert report.failures == [] and report.balanced
