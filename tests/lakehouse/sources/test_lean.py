"""The LEAN flat-file adapter: real AlgoSeek/FXCM/OANDA/crypto/option files and synthetic edge cases."""

from __future__ import annotations

import zipfile
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from core.errors import ConfigError, SourceError
from lakehouse.ingest import Ingestor
from lakehouse.security_master import known_symbols
from lakehouse.sources import lean
from lakehouse.sources.lean_paths import describe, symbol_id
from lakehouse.sources.registry import parse_params
from lakehouse.tables import BRONZE_BARS, BRONZE_OPTIONS_CHAIN, BRONZE_QUARANTINE, BRONZE_QUOTES, BRONZE_TRADES

UTC = UTC


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def write_zip(path: Path, lines: list[str] | bytes, member: str = "data.csv") -> Path:
    """Write ``lines`` as the single CSV member of a zip (a tiny synthetic LEAN file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = lines if isinstance(lines, bytes) else "\n".join(lines).encode()
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(member, payload)
    return path


def ms(hh: int, mm: int, ss: int = 0) -> int:
    return ((hh * 60 + mm) * 60 + ss) * 1000


def zip_lines(path: Path) -> int:
    with zipfile.ZipFile(path) as zf:
        return sum(1 for line in zf.read(zf.namelist()[0]).splitlines() if line.strip())


@pytest.fixture
def ingestor(lake, clock) -> Ingestor:
    return Ingestor(lake, clock, known_symbols())


@pytest.fixture
def lean_root(shared_data) -> Path:
    return shared_data / "lean"


def run(ingestor, root: Path, **params):
    report = ingestor.run(lean.batches(lean.Params(root=root, **params)))
    assert report.balanced, report.lines()
    return report


# ---- real files ---------------------------------------------------------------------------------


def test_bac_ticks_one_day(ingestor, lake, lean_root):
    report = run(
        ingestor,
        lean_root,
        asset_classes=("equity",),
        resolutions=("tick",),
        tickers=("bac",),
        start=date(2013, 10, 7),
        end=date(2013, 10, 7),
    )
    tick = lean_root / "equity/usa/tick/bac"
    by_table = {a.table: a for a in report.accounts}
    assert by_table["bronze.trades"].rows_read == zip_lines(tick / "20131007_trade.zip") == 88_172
    assert by_table["bronze.quotes"].rows_read == zip_lines(tick / "20131007_quote.zip") == 476_855
    assert {a.source for a in report.accounts} == {"lean"}
    trades = lake.read(BRONZE_TRADES).sort("ts", "seq")
    assert trades.height == by_table["bronze.trades"].rows_written
    first = trades.row(0, named=True)
    # "14400614,139400,500,P,20002020,0": 04:00:00.614 New York (EDT) = 08:00:00.614 UTC
    assert first["ts"] == utc(2013, 10, 7, 8, 0, 0, 614_000)
    assert (first["price"], first["size"], first["exchange"], first["conditions"]) == (13.94, 500.0, "P", "20002020")
    assert trades.get_column("side").null_count() == trades.height
    repeated = trades.filter(pl.col("seq") > 0)
    assert repeated.height > 0  # several prints in the same millisecond are all kept, numbered in file order
    quotes = lake.read(BRONZE_QUOTES).sort("ts", "seq")
    head = quotes.head(3)
    # "14400151,0,0,140200,500,Q,1,0" has no bid side; then "14400554,138400,700,0,0,P,..." has no ask side.
    assert head.get_column("bid").to_list()[:2] == [None, 13.84]
    assert head.get_column("ask").to_list()[:2] == [14.02, None]
    assert head.get_column("seq").to_list() == [0, 0, 1]


def test_spy_second_bars_are_stamped_at_their_end(ingestor, lake, lean_root):
    report = run(
        ingestor,
        lean_root,
        resolutions=("second",),
        tickers=("spy",),
        kinds=("trade",),
        start=date(2013, 10, 7),
        end=date(2013, 10, 7),
    )
    (acc,) = report.accounts
    assert acc.rows_read == zip_lines(lean_root / "equity/usa/second/spy/20131007_trade.zip") == 16_675
    bars = lake.read(BRONZE_BARS).sort("ts")
    first = bars.row(0, named=True)
    # "14400000,1674100,...,2049": the second 04:00:00-04:00:01 EDT ends at 08:00:01 UTC
    assert (first["ts"], first["tf"], first["kind"], first["close"], first["volume"]) == (
        utc(2013, 10, 7, 8, 0, 1),
        "1s",
        "trade",
        167.41,
        2049.0,
    )


def test_aapl_minute_bars_across_the_split(ingestor, lake, lean_root):
    run(
        ingestor, lean_root, resolutions=("minute",), tickers=("AAPL:US",), start=date(2014, 6, 6), end=date(2014, 6, 9)
    )
    bars = lake.read(BRONZE_BARS)
    trade = bars.filter(pl.col("kind") == "trade")
    open_before = trade.filter(pl.col("ts") == utc(2014, 6, 6, 13, 31)).row(0, named=True)
    open_after = trade.filter(pl.col("ts") == utc(2014, 6, 9, 13, 31)).row(0, named=True)
    # The 09:30 bar (09:30-09:31 EDT) ends at 13:31 UTC; raw prices drop 7:1 across the split.
    assert (open_before["open"], open_before["close"]) == (650.0, 649.56)
    assert (open_after["open"], open_after["close"]) == (92.69, 92.72)
    assert open_after["volume"] == 2_467_914
    # Known wart: the 04:00 bar on the split day mixes pre- and post-split prices; bronze keeps it as delivered.
    wart = trade.filter(pl.col("ts") == utc(2014, 6, 9, 8, 1)).row(0, named=True)
    assert (wart["open"], wart["low"]) == (645.57, 92.23)
    assert set(bars.get_column("kind")) == {"trade", "bid", "ask"}
    assert trade.height == zip_lines(lean_root / "equity/usa/minute/aapl/20140606_trade.zip") + zip_lines(
        lean_root / "equity/usa/minute/aapl/20140609_trade.zip"
    )


def test_daily_bars_at_the_session_close_across_dst_and_half_days(ingestor, lake, lean_root):
    run(ingestor, lean_root, resolutions=("daily",), tickers=("aapl",), start=date(2013, 11, 28), end=date(2014, 6, 9))
    bars = lake.read(BRONZE_BARS).sort("ts")
    close = dict(zip(bars.get_column("ts"), bars.get_column("close")))
    assert close[utc(2014, 6, 6, 20)] == 645.57  # 16:00 EDT
    assert close[utc(2014, 6, 9, 20)] == 93.70  # raw, after the 7:1 split
    assert close[utc(2014, 3, 7, 21)] == 530.44  # 16:00 EST, Friday before the DST change
    assert close[utc(2014, 3, 10, 20)] == 530.92  # 16:00 EDT, Monday after it
    assert close[utc(2013, 11, 29, 18)] == 556.07  # day after Thanksgiving: 13:00 EST early close
    assert bars.get_column("tf").unique().to_list() == ["1d"]
    assert bars.get_column("ts").dt.date().min() == date(2013, 11, 29)  # the row window applies to history files


def test_hour_bars_end_one_hour_after_their_lean_stamp(ingestor, lake, lean_root):
    run(
        ingestor,
        lean_root,
        resolutions=("hour",),
        tickers=("aapl", "spy"),
        start=date(2014, 6, 6),
        end=date(2014, 6, 6),
    )
    bars = lake.read(BRONZE_BARS).filter(pl.col("symbol_id") == "AAPL:US").sort("ts")
    # LEAN's 09:00 hour bar holds 09:30-10:00 trading; stamped at its end, 10:00 EDT = 14:00 UTC.
    first = bars.row(0, named=True)
    assert (first["ts"], first["tf"], first["open"], first["close"]) == (utc(2014, 6, 6, 14), "1h", 650.0, 647.86)
    assert bars.get_column("ts").max() == utc(2014, 6, 6, 20)
    assert set(lake.read(BRONZE_BARS).get_column("symbol_id")) == {"AAPL:US", "SPY:US"}


def test_eurusd_from_both_vendors_keeps_their_clock_offset(ingestor, lake, lean_root):
    report = run(
        ingestor,
        lean_root,
        asset_classes=("forex",),
        resolutions=("minute", "tick"),
        start=date(2014, 5, 2),
        end=date(2014, 5, 2),
    )
    assert {a.source for a in report.accounts} == {"fxcm", "oanda"}
    bars = lake.read(BRONZE_BARS)
    assert set(bars.get_column("symbol_id")) == {"EURUSD:FX"} and set(bars.get_column("kind")) == {"bid", "ask"}
    for vendor in ("fxcm", "oanda"):
        lines = zip_lines(lean_root / f"forex/{vendor}/minute/eurusd/20140502_quote.zip")
        assert bars.filter(pl.col("source") == vendor).height == 2 * lines  # one bid and one ask bar per line
    last = bars.group_by("source").agg(pl.col("ts").max()).sort("source")
    # Friday close: FXCM's last bar ends 16:00, OANDA's 21:00 as delivered (the real 300-minute offset).
    assert last.get_column("ts").to_list() == [utc(2014, 5, 2, 16), utc(2014, 5, 2, 21)]


def test_fxcm_read_in_leans_declared_zone_aligns_with_oanda(ingestor, lake, lean_root):
    run(
        ingestor,
        lean_root,
        asset_classes=("forex",),
        resolutions=("minute",),
        markets=("fxcm",),
        start=date(2014, 5, 2),
        end=date(2014, 5, 2),
        fx_data_tz={"fxcm": "Etc/GMT+5"},
    )
    assert lake.read(BRONZE_BARS).get_column("ts").max() == utc(2014, 5, 2, 21)


def test_forex_ticks_are_quotes_without_sizes(ingestor, lake, lean_root):
    report = run(
        ingestor,
        lean_root,
        asset_classes=("forex",),
        resolutions=("tick",),
        markets=("oanda",),
        start=date(2014, 5, 5),
        end=date(2014, 5, 5),
    )
    (acc,) = report.accounts
    assert acc.rows_read == 25_177 and acc.source == "oanda"
    quotes = lake.read(BRONZE_QUOTES).sort("ts", "seq")
    first = quotes.row(0, named=True)
    assert (first["ts"], first["bid"], first["ask"], first["bid_size"]) == (
        utc(2014, 5, 5, 0, 0, 23, 668_000),
        1.3871,
        1.38726,
        None,
    )


def test_btc_from_three_exchanges(ingestor, lake, lean_root):
    report = run(
        ingestor,
        lean_root,
        asset_classes=("crypto",),
        resolutions=("minute",),
        kinds=("trade",),
        start=date(2018, 4, 4),
        end=date(2022, 12, 13),
    )
    assert {a.source for a in report.accounts} == {"binance", "bybit", "coinbase"}
    bars = lake.read(BRONZE_BARS).filter(pl.col("kind") == "trade")
    assert set(bars.get_column("symbol_id")) == {"BTCUSD:CRYPTO"}
    assert bars.filter(pl.col("source") == "binance").height == 1440
    first = bars.filter(pl.col("source") == "binance").sort("ts").row(0, named=True)
    assert (first["ts"], first["open"], first["volume"]) == (utc(2022, 12, 13, 0, 1), 17212.12, 110.66042)
    both = (
        bars.filter(pl.col("source") == "binance")
        .select("ts", pl.col("close").alias("binance"))
        .join(bars.filter(pl.col("source") == "bybit").select("ts", pl.col("close").alias("bybit")), on="ts")
    )
    gap = (both.get_column("binance") - both.get_column("bybit")).abs().median()
    assert 1.0 < gap < 20.0  # the venues genuinely disagree by a few dollars


def test_crypto_perpetuals_get_their_own_symbols(ingestor, lake, lean_root):
    run(ingestor, lean_root, asset_classes=("cryptofuture",))
    bars = lake.read(BRONZE_BARS)
    got = set(zip(bars.get_column("source"), bars.get_column("symbol_id")))
    assert got == {("binance", "BTCUSD-INVPERP:CRYPTO"), ("bybit", "BTCUSD-PERP:CRYPTO")}


def test_option_universe(ingestor, lake, lean_root):
    report = run(
        ingestor,
        lean_root,
        asset_classes=("option",),
        tickers=("goog",),
        start=date(2015, 12, 23),
        end=date(2015, 12, 23),
    )
    (acc,) = report.accounts
    path = lean_root / "option/usa/universes/goog/20151223.csv"
    options = len(path.read_text().splitlines()) - 2  # header and underlying rows are not options
    assert acc.rows_read == acc.rows_written == options == 2192
    chain = lake.read(BRONZE_OPTIONS_CHAIN)
    assert set(chain.get_column("ts")) == {utc(2015, 12, 23, 21)}
    assert set(chain.get_column("underlying")) == {"GOOG:US"} and set(chain.get_column("right")) == {"C", "P"}
    row = chain.filter(
        (pl.col("expiry") == date(2018, 1, 19)) & (pl.col("strike") == 1140.0) & (pl.col("right") == "P")
    ).row(0, named=True)
    assert (row["last"], row["open_interest"], row["iv"], row["bid"]) == (384.91, 3310.0, 0.0, None)


def test_malformed_universe_line_is_quarantined(ingestor, lake, lean_root):
    run(ingestor, lean_root, files=(Path("option/usa/universes/spy/20240105.csv"),))
    q = lake.read(BRONZE_QUARANTINE)
    assert q.get_column("reason").to_list() == ["rho: not a number (-0.0009296.0025941)"]
    assert q.get_column("row").to_list() == [17] and q.get_column("table").to_list() == ["bronze.options_chain"]


def test_second_run_writes_nothing_and_keeps_content(ingestor, lake, lean_root):
    params = dict(resolutions=("minute",), tickers=("aig",), start=date(2013, 10, 7), end=date(2013, 10, 7))
    first = run(ingestor, lean_root, **params)
    before = lake.read(BRONZE_BARS).sort("kind", "ts")
    second = run(ingestor, lean_root, **params)
    assert first.total("rows_written") > 0 and second.total("rows_written") == 0
    assert second.total("duplicates") == first.total("rows_written")
    assert_frame_equal(lake.read(BRONZE_BARS).sort("kind", "ts"), before)


# ---- synthetic files ----------------------------------------------------------------------------


def test_bad_lines_are_quarantined_with_reasons(tmp_path, ingestor, lake):
    path = write_zip(
        tmp_path / "equity/usa/tick/aapl/20140606_trade.zip",
        [
            f"{ms(9, 30)},6500000,100,Q,0,0",  # good
            f"{ms(9, 31)},-6500000,100,Q,0,0",  # negative price
            f"{ms(9, 32)},nan,100,Q,0,0",  # NaN price
            f"{ms(9, 33)},6500000,100,Q",  # wrong field count
            f"{ms(9, 34)},65abc,100,Q,0,0",  # not a number
            f"{ms(9, 20)},6500000,100,Q,0,0",  # goes back in time
            "",  # blank lines are not rows
            f"{ms(9, 35)},6500100,200,Q,0,1",  # vendor-flagged suspicious: kept, flagged
        ],
    )
    report = run(ingestor, tmp_path)
    (acc,) = report.accounts
    assert (acc.rows_read, acc.rows_written, acc.quarantined) == (7, 2, 5)
    q = lake.read(BRONZE_QUARANTINE).sort("row")
    assert q.select("row", "reason").rows() == [
        (2, "price must be > 0"),
        (3, "price is not finite"),
        (4, "expected 6 fields, got 4"),
        (5, "price: not a number (65abc)"),
        (6, "ts goes backwards (out of order)"),
    ]
    assert q.get_column("raw")[3] == f"{ms(9, 34)},65abc,100,Q,0,0"
    assert set(q.get_column("file")) == {str(path)}
    trades = lake.read(BRONZE_TRADES).sort("ts")
    assert trades.get_column("conditions").to_list() == ["0", "0;suspicious"]


def test_dst_change_on_both_sides(tmp_path, ingestor, lake):
    for day in ("20140307", "20140310"):  # US clocks moved forward on Sunday 2014-03-09
        write_zip(
            tmp_path / f"equity/usa/minute/spy/{day}_trade.zip", [f"{ms(9, 30)},1850000,1851000,1849000,1850500,1000"]
        )
        write_zip(tmp_path / f"equity/usa/tick/spy/{day}_quote.zip", [f"{ms(9, 30)},1850000,100,1850100,200,P,0,0"])
    run(ingestor, tmp_path)
    assert lake.read(BRONZE_BARS).sort("ts").get_column("ts").to_list() == [
        utc(2014, 3, 7, 14, 31),
        utc(2014, 3, 10, 13, 31),
    ]
    assert lake.read(BRONZE_QUOTES).sort("ts").get_column("ts").to_list() == [
        utc(2014, 3, 7, 14, 30),
        utc(2014, 3, 10, 13, 30),
    ]


def test_corrupt_empty_and_missing_files_fail_alone(tmp_path, ingestor, lake):
    good = write_zip(tmp_path / "crypto/coinbase/minute/btcusd/20180404_trade.zip", ["0,7424.91,7424.91,7422,7422,7.1"])
    corrupt = tmp_path / "crypto/coinbase/minute/btcusd/20180405_trade.zip"
    corrupt.write_bytes(good.read_bytes()[:30])  # truncated archive
    empty = tmp_path / "crypto/coinbase/minute/btcusd/20180406_trade.zip"
    empty.write_bytes(b"")
    blank = write_zip(tmp_path / "crypto/coinbase/minute/btcusd/20180407_trade.zip", b"")
    missing = Path("crypto/coinbase/minute/btcusd/20180408_trade.zip")
    damaged = write_zip(
        tmp_path / "crypto/coinbase/minute/btcusd/20180409_trade.zip",
        [f"{i},7424.91,7424.91,7422,7422,{i}.5" for i in range(0, 86_400_000, 60_000)],
    )
    raw = bytearray(damaged.read_bytes())
    raw[200:260] = bytes(60)  # damage the compressed stream; the directory still reads
    damaged.write_bytes(bytes(raw))
    files = (
        good.relative_to(tmp_path),
        corrupt.relative_to(tmp_path),
        empty.relative_to(tmp_path),
        blank.relative_to(tmp_path),
        missing,
        damaged.relative_to(tmp_path),
    )
    report = ingestor.run(lean.batches(lean.Params(root=tmp_path, files=files)))
    assert [a.file for a in report.accounts] == [str(good)] and report.accounts[0].rows_written == 1
    failed = {Path(f.file).name: f.message for f in report.failures}
    assert set(failed) == {f"2018040{d}_trade.zip" for d in range(5, 10)}
    for name, message in failed.items():
        assert name in message
    assert "corrupt" in failed["20180405_trade.zip"] and "not found" in failed["20180408_trade.zip"]
    assert "empty" in failed["20180407_trade.zip"] and "corrupt" in failed["20180409_trade.zip"]
    q = lake.read(BRONZE_QUARANTINE)
    assert q.filter(pl.col("row") == 0).height == 5  # each failure is recorded once, with its file


def test_quote_bars_with_one_empty_side(tmp_path, ingestor, lake):
    write_zip(
        tmp_path / "equity/usa/minute/foxa/20130701_quote.zip",
        [
            f"{ms(4, 0)},270000,270000,270000,270000,100,,,,,0",  # ask side empty: one bid bar
            f"{ms(9, 30)},270000,271000,269000,270500,100,271000,272000,270000,271500,300",
            f"{ms(9, 31)},,,,,0,,,,,0",  # nothing at all: rejected
        ],
    )
    (acc,) = run(ingestor, tmp_path).accounts
    assert (acc.rows_read, acc.rows_written, acc.quarantined) == (4, 3, 1)
    bars = lake.read(BRONZE_BARS).sort("ts", "kind")
    assert bars.select("kind", "close", "volume").rows() == [
        ("bid", 27.0, 100.0),
        ("ask", 27.15, 300.0),
        ("bid", 27.05, 100.0),
    ]
    assert lake.read(BRONZE_QUARANTINE).get_column("reason").to_list() == ["bid and ask: both sides missing"]


def test_suspicious_quotes_are_quarantined(tmp_path, ingestor, lake):
    write_zip(
        tmp_path / "equity/usa/tick/bac/20131007_quote.zip",
        [f"{ms(9, 30)},139400,100,139500,200,P,1,0", f"{ms(9, 30)},139400,100,149500,200,P,1,1"],
    )
    (acc,) = run(ingestor, tmp_path).accounts
    assert (acc.rows_written, acc.quarantined) == (1, 1)
    assert lake.read(BRONZE_QUARANTINE).get_column("reason").to_list() == [
        "suspicious: quote flagged suspicious by the vendor"
    ]


# ---- parameters and paths -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "asset, ticker, expected",
    [
        ("equity", "aapl", "AAPL:US"),
        ("indexoption", "spx", "SPX:US"),
        ("forex", "eurusd", "EURUSD:FX"),
        ("crypto", "btcbusd", "BTCUSD:CRYPTO"),
        ("crypto", "btcusdt", "BTCUSD:CRYPTO"),
        ("crypto", "btcusd", "BTCUSD:CRYPTO"),
        ("cryptofuture", "btcusdt", "BTCUSD-PERP:CRYPTO"),
        ("cryptofuture", "btcusd", "BTCUSD-INVPERP:CRYPTO"),
    ],
)
def test_symbol_ids(asset, ticker, expected):
    assert symbol_id(asset, ticker) == expected


def test_paths_describe_their_content(tmp_path):
    f = describe(tmp_path / "crypto/coinbase/daily/btcusd_quote.zip", tmp_path)
    assert (f.asset_class, f.market, f.resolution, f.kind, f.ticker, f.day, f.source, f.table) == (
        "crypto",
        "coinbase",
        "daily",
        "quote",
        "btcusd",
        None,
        "coinbase",
        "bronze.bars",
    )
    g = describe(tmp_path / "equity/usa/tick/bac/20131007_trade.zip", tmp_path)
    assert (g.day, g.source, g.table, g.symbol_id) == (date(2013, 10, 7), "lean", "bronze.trades", "BAC:US")


def test_params_are_strict():
    with pytest.raises(ConfigError, match="root"):
        parse_params("lean", {})
    with pytest.raises(ConfigError, match="tikers"):
        parse_params("lean", {"root": "/x", "tikers": ["aapl"]})
    with pytest.raises(ConfigError, match="Mars/Olympus"):
        parse_params("lean", {"root": "/x", "fx_data_tz": {"fxcm": "Mars/Olympus"}})
    with pytest.raises(ConfigError, match="after end"):
        parse_params("lean", {"root": "/x", "start": "2014-01-02", "end": "2014-01-01"})
    p = parse_params("lean", {"root": "/x", "asset_classes": ["forex"], "start": "2014-05-01"})
    assert p.asset_classes == ("forex",) and p.start == date(2014, 5, 1)


def test_fractional_milliseconds_keep_nanosecond_precision(tmp_path, ingestor, lake):
    write_zip(
        tmp_path / "equity/usa/tick/bac/20131007_trade.zip",
        ["34200000.5,139400,100,P,0,0", "34200000.5,139500,100,Q,0,0", "34200001.25,139400,100,P,0,0"],
    )
    run(ingestor, tmp_path)
    trades = lake.read(BRONZE_TRADES).sort("ts", "seq")
    assert trades.get_column("ts").to_list() == [
        utc(2013, 10, 7, 13, 30, 0, 500),
        utc(2013, 10, 7, 13, 30, 0, 500),
        utc(2013, 10, 7, 13, 30, 0, 1250),
    ]
    assert trades.get_column("seq").to_list() == [0, 1, 0]
    assert trades.get_column("exchange").to_list() == ["P", "Q", "P"]


def test_missing_root_is_an_error_naming_it(tmp_path):
    with pytest.raises(SourceError, match="nope: LEAN data folder not found"):
        list(lean.batches(lean.Params(root=tmp_path / "nope")))
