"""Tabular adapter: real Yahoo/backtesting/arch files through their mappings, strict mappings, quarantine."""

from __future__ import annotations

import gzip
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
import pytest

from core.errors import ConfigError
from lakehouse.ingest import Ingestor
from lakehouse.security_master import known_symbols
from lakehouse.sources import tabular
from lakehouse.sources.tabular_mapping import DIRECTORY, load_mapping
from lakehouse.storage import ts_value
from lakehouse.tables import BRONZE_BARS, BRONZE_QUARANTINE, BRONZE_TRADES
from lakehouse.validate import split_valid

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "tabular"


def _parse(mapping: str, path: Path):
    """Parse one file through a named mapping without a lake: (rows, rejected)."""
    (chunk,) = next(tabular.batches(tabular.Params(mapping=mapping, paths=[str(path)]), None)).chunks
    return chunk.data, chunk.rejected


def _ingest(lake, clock, **params):
    return Ingestor(lake, clock, known_symbols()).run(tabular.batches(tabular.Params(**params), clock))


def _utc(*args) -> int:
    return ts_value(datetime(*args, tzinfo=UTC))


def test_every_mapping_file_loads():
    names = sorted(p.stem for p in DIRECTORY.glob("*.yaml"))
    assert {"yahoo_daily", "backtesting_goog", "arch_indices", "arch_wti", "arch_vix"} <= set(names)
    for name in names:
        assert load_mapping(name).table.startswith("bronze.")


def test_yahoo_daily_values_and_bar_end(shared_data):
    path = shared_data / "mplfinance/yahoofinance-AAPL-20040819-20180120.csv"
    rows, rejected = _parse("yahoo_daily", path)
    assert not rejected and rows.height == len(path.read_text().splitlines()) - 1 == 3379
    assert set(rows["symbol_id"]) == {"AAPL:US"}
    first = rows.row(0, named=True)
    assert (first["open"], first["close"], first["volume"]) == (2.250714, 2.193571, 97230000.0)
    # the 2004-08-19 bar ends at that session's XNYS close, 16:00 EDT = 20:00 UTC (as LEAN's daily bars)
    assert rows["ts"].dt.epoch("ns")[0] == _utc(2004, 8, 19, 20)
    # split-adjusted close before the 7:1 split of 2014-06-09 (SOURCE.txt: 645.57 / 7)
    june6 = rows.filter(pl.col("ts").dt.epoch("ns") == _utc(2014, 6, 6, 20))
    assert june6["close"].to_list() == [92.224289]
    assert rows["close"][-1] == 178.460007


def test_yahoo_adjustment_frame(shared_data):
    adj = tabular.yahoo_adjustment_frame(shared_data / "mplfinance/yahoofinance-SPY-20080101-20180101.csv")
    assert adj.columns == ["date", "close", "adj_close"] and adj.height == 2519
    assert adj.row(0) == (date(2007, 12, 31), 146.210007, 118.624741)
    assert adj.row(-1) == (date(2017, 12, 29), 266.859985, 266.859985)


@pytest.mark.parametrize(
    ("mapping", "file", "n", "symbol", "first_ts", "first_close", "last_close"),
    [
        ("backtesting_goog", "backtesting/GOOG.csv", 2148, "GOOG:US", (2004, 8, 19, 20), 100.34, 806.19),
        ("backtesting_eurusd", "backtesting/EURUSD.csv", 5000, "EURUSD:FX", (2017, 4, 19, 10), 1.07219, 1.22904),
        ("backtesting_btcusd", "backtesting/BTCUSD.csv", 156, "BTCUSD:CRYPTO", (2012, 2, 1), 5.55, 93381.0),
        ("arch_indices", "arch/sp500.csv.gz", 5031, "SPX:US", (1999, 1, 4, 21), 1228.099976, 2506.850098),
        ("arch_indices", "arch/nasdaq.csv.gz", 5031, "COMP:US", (1999, 1, 4, 21), 2208.050049, 6635.279785),
        ("arch_crude_brent", "arch/crude.csv.gz", 393, "BRENT:SPOT", (1987, 6, 1), 18.58, 63.83),
        (
            "mplfinance_sp500_intraday",
            "mplfinance/SP500_NOV2019_IDay.csv",
            1563,
            "SPX:US",
            (2019, 11, 5, 14, 31),
            3080.49,
            3092.91,
        ),
    ],
)
def test_real_files_through_their_mappings(shared_data, mapping, file, n, symbol, first_ts, first_close, last_close):
    rows, rejected = _parse(mapping, shared_data / file)
    assert not rejected and rows.height == n and set(rows["symbol_id"]) == {symbol}
    assert rows["ts"].dt.epoch("ns")[0] == _utc(*first_ts)
    assert (rows["close"][0], rows["close"][-1]) == (first_close, last_close)


def test_wti_holidays_fail_the_declared_checks(shared_data):
    """'.' (no price) is a declared null token: the rows reach the engine's checks as missing."""
    path = shared_data / "arch/wti.csv.gz"
    rows, rejected = _parse("arch_wti", path)
    good, bad = split_valid(BRONZE_BARS, rows, known_symbols())
    assert not rejected and (rows.height, good.height, bad.height) == (8611, 8321, 290)
    assert set(bad["_reason"]) == {"open is missing"}
    lines = gzip.decompress(path.read_bytes()).decode().splitlines()
    line_no = lines.index("2/17/1986,.") + 1  # Presidents' Day 1986: no price
    assert bad.filter(pl.col("_row") == line_no)["_raw"].to_list() == ["2/17/1986,."]
    assert good["close"][0] == 25.56 and good["close"][-1] == 46.92


def test_second_ingest_writes_nothing(shared_data, lake, clock):
    first = _ingest(lake, clock, mapping="mplfinance_sp500_daily", root=str(shared_data))
    assert first.total("rows_written") == 20
    before = lake.read(BRONZE_BARS).drop("ingest_ts").sort("ts")
    again = _ingest(lake, clock, mapping="mplfinance_sp500_daily", root=str(shared_data))
    assert again.total("rows_written") == 0 and again.total("duplicates") == 20
    assert lake.read(BRONZE_BARS).drop("ingest_ts").sort("ts").equals(before)


def test_bad_rows_are_quarantined_with_raw_text(lake, clock):
    report = _ingest(lake, clock, mapping="yahoo_daily", paths=[str(FIXTURES / "yahoofinance-AAPL-bad.csv")])
    (acc,) = report.accounts
    assert report.balanced and (acc.rows_read, acc.rows_written, acc.quarantined) == (7, 2, 5)
    q = lake.read(BRONZE_QUARANTINE).sort("row")
    reasons = dict(zip(q["row"], q["reason"]))
    assert reasons[3] == "close: cannot parse 'abc' as a number (column Close)"
    assert reasons[4].startswith("ts: cannot parse '2020-13-01' with format %Y-%m-%d")
    assert reasons[5] == "open is not finite"
    assert reasons[6] == "low must be > 0"
    assert reasons[8] == "close is missing"
    assert q.filter(pl.col("row") == 3)["raw"].to_list() == ["2020-01-03,10.0,11.0,9.0,abc,9.9,1000"]
    assert lake.read(BRONZE_BARS)["close"].to_list() == [10.5, 10.8]


def test_wrong_mapping_fails_the_file_naming_column_and_file(shared_data, lake, clock):
    mapping = load_mapping("yahoo_daily").model_dump()
    mapping["columns"]["close"] = "Closing Price"
    path = shared_data / "mplfinance/yahoofinance-SPY-20200901-20210113.csv"
    report = _ingest(lake, clock, mapping=mapping, paths=[str(path)])
    (failure,) = report.failures
    assert "Closing Price" in failure.message and path.name in failure.message
    assert not report.accounts


def test_mapping_unknown_key_is_an_error(tmp_path):
    bad = tmp_path / "typo.yaml"
    bad.write_text((DIRECTORY / "yahoo_daily.yaml").read_text() + "price_scael: 2\n")
    with pytest.raises(ConfigError, match="price_scael"):
        load_mapping(bad)
    with pytest.raises(ConfigError, match="colse"):
        tabular.Params(mapping={**load_mapping("yahoo_daily").model_dump(), "columns": {"colse": "Close"}}).resolved()
    with pytest.raises(ConfigError, match="known mappings: .*yahoo_daily"):
        load_mapping("no_such_mapping")


def test_trades_mapping_with_symbol_column_and_scale(lake, clock):
    mapping = {
        "table": "bronze.trades",
        "source": "fixture",
        "symbol_column": "sym",
        "symbol_template": "{symbol}:US",
        "columns": {"price": "px", "size": "qty"},
        "price_scale": 0.01,
        "timestamp": {"column": "t", "unit": "ms"},
    }
    report = _ingest(lake, clock, mapping=mapping, paths=[str(FIXTURES / "trades_ms.csv")])
    assert report.balanced
    trades = lake.read(BRONZE_TRADES).sort("ts", "seq")
    assert trades["symbol_id"].to_list() == ["AAPL:US", "AAPL:US", "SPY:US"]
    assert trades["price"].to_list() == [101.25, 101.5, 450.0] and trades["seq"].to_list() == [0, 1, 0]
    assert trades["ts"].dt.epoch("ns").to_list() == [1_600_000_000_000_000_000] * 2 + [1_600_000_000_001_000_000]
