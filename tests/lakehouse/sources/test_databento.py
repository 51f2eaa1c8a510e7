"""Databento adapter: real DBN files per schema, ns timestamps, bar-end stamping, corrupt files."""

from __future__ import annotations

from datetime import UTC, date, datetime

import polars as pl
import pyarrow as pa
import pytest

from lakehouse.ingest import Ingestor
from lakehouse.sources import databento
from lakehouse.sources.databento_decode import read_header, text_frames
from lakehouse.storage import ts_value
from lakehouse.tables import (
    BRONZE_BARS,
    BRONZE_BOOK_EVENTS,
    BRONZE_FUTURES_CONTRACTS,
    BRONZE_QUARANTINE,
    BRONZE_QUOTES,
    BRONZE_TRADES,
)

KNOWN = frozenset({"ESH1:CME", "ESH4:CME", "ESM3:CME"})
MBO = "nautilus/databento/esh4-glbx-mdp3-20231225.mbo.dbn.zst"


def _ingest(lake, clock, paths, **kw):
    params = databento.Params(paths=[str(p) for p in paths], **kw)
    return Ingestor(lake, clock, KNOWN).run(databento.batches(params, clock))


def _ns(frame: pl.DataFrame, column: str = "ts") -> list[int]:
    return frame[column].dt.epoch("ns").to_list()


def _chunks(path, **kw):
    return list(next(databento.batches(databento.Params(paths=[str(path)], **kw), None)).chunks)


def test_es_mbo_book_events_and_trades(shared_data, lake, clock):
    report = _ingest(lake, clock, [shared_data / MBO])
    assert report.balanced and not report.failures
    events = lake.read(BRONZE_BOOK_EVENTS)
    assert events.height == 68_792  # SOURCE.txt: 68,792 MBO messages
    assert set(events["symbol_id"]) == {"ESH4:CME"} and set(events["source"]) == {"databento.mbo"}
    events = events.sort("ts", "seq")
    # the book snapshot opens the file: ts_event 2023-12-24T13:00:05.243925307Z, bids at 4799.00
    snap = events.filter(pl.col("action") == "snapshot")
    assert snap.height == 8_725 and _ns(snap)[0] == 1_703_422_805_243_925_307
    assert snap.sort("seq")["price"][0] == 4799.0
    assert _ns(events)[-1] == 1_703_548_799_446_724_905  # 2023-12-25T23:59:59.446724905Z
    assert events.row(-1, named=True)["action"] == "modify" and events.row(-1, named=True)["price"] == 4810.5
    trades = lake.read(BRONZE_TRADES).sort("ts", "seq")
    assert trades.height == 2_973 == events.filter(pl.col("action") == "trade").height
    first = trades.row(0, named=True)
    assert _ns(trades)[0] == 1_703_545_200_000_000_000 and first["price"] == 4800.25 and first["size"] == 44
    assert first["side"] is None  # the reopening print has no aggressor (side N)
    assert trades["size"].sum() == 9_892  # T prints only; F (resting-order fills) are not trades


def test_second_ingest_writes_nothing(shared_data, lake, clock):
    paths = [shared_data / MBO, shared_data / "databento"]
    _ingest(lake, clock, paths)
    before = {t.qualified: lake.read(t).drop("ingest_ts").sort(t.keys) for t in (BRONZE_BOOK_EVENTS, BRONZE_TRADES)}
    again = _ingest(lake, clock, paths)
    assert again.total("rows_written") == 0 and again.balanced
    for t in (BRONZE_BOOK_EVENTS, BRONZE_TRADES):
        assert lake.read(t).drop("ingest_ts").sort(t.keys).equals(before[t.qualified])


def test_chunked_decoding_gives_the_same_rows(shared_data):
    whole = _chunks(shared_data / MBO)
    pieces = _chunks(shared_data / MBO, block_bytes=300_000)
    assert len(pieces) > len(whole)
    for table in (BRONZE_BOOK_EVENTS.qualified, BRONZE_TRADES.qualified):
        a = pl.concat([c.data for c in whole if c.table.qualified == table])
        b = pl.concat([c.data for c in pieces if c.table.qualified == table])
        assert a.equals(b)  # seq carried across chunk boundaries, rows numbered through


def test_ohlcv_is_restamped_at_bar_end(shared_data, lake, clock):
    folder = shared_data / "databento"
    _ingest(lake, clock, [folder / f"test_data.ohlcv-{tf}.v3.dbn.zst" for tf in ("1s", "1m", "1h", "1d")])
    bars = lake.read(BRONZE_BARS).sort("tf", "ts")
    open_ns = 1_609_160_400_000_000_000  # first bar opens 2020-12-28T13:00:00Z
    got = {tf: _ns(g)[0] - open_ns for (tf,), g in bars.group_by("tf")}
    assert got == {"1s": 1_000_000_000, "1m": 60_000_000_000, "1h": 3_600_000_000_000}
    one_h = bars.filter(pl.col("tf") == "1h")
    # the fixture's OHLCV prices are 100x the trades' (372025.0 vs 3720.25): stored as delivered
    assert one_h["open"].to_list() == [372025.0, 372225.0] and one_h["volume"].to_list() == [9385.0, 112698.0]


def test_quotes_trades_and_definitions(shared_data, lake, clock):
    folder = shared_data / "databento"
    report = _ingest(
        lake,
        clock,
        [
            folder / "test_data.mbp-1.v3.dbn.zst",
            folder / "test_data.trades.v3.dbn.zst",
            folder / "test_data.bbo-1s.v3.dbn.zst",
            folder / "test_data.definition.v3.dbn.zst",
            shared_data / "nautilus/databento/definition-glbx-es-fut.dbn.zst",
        ],
    )
    assert report.balanced and not report.failures
    quotes = lake.read(BRONZE_QUOTES).filter(pl.col("source") == "databento.mbp-1").sort("ts")
    assert quotes.rows()[0][:6] == (quotes["ts"][0], "ESH1:CME", 3720.25, 24.0, 3720.5, 11.0)
    assert _ns(quotes)[0] == 1_609_160_400_006_001_487
    bbo = lake.read(BRONZE_QUOTES).filter(pl.col("source") == "databento.bbo-1s").sort("ts")
    assert _ns(bbo)[0] == 1_609_113_600_000_000_000  # sampled BBO: stamped at the interval (ts_recv)
    trades = lake.read(BRONZE_TRADES).sort("ts")
    assert trades["price"].to_list() == [3720.25, 3720.25] and trades["side"].to_list() == [-1, -1]
    contracts = lake.read(BRONZE_FUTURES_CONTRACTS)
    assert contracts.rows(named=True)[0] | {"ingest_ts": None, "batch_id": None} == {
        "root": "ES",
        "contract": "ESM3:CME",
        "expiry": date(2023, 6, 16),
        "first_notice": None,
        "last_trade": date(2023, 6, 16),
        "multiplier": 50.0,
        "tick_size": 0.25,
        "source": "databento",
        "ingest_ts": None,
        "batch_id": None,
    }
    q = lake.read(BRONZE_QUARANTINE).filter(pl.col("table") == BRONZE_FUTURES_CONTRACTS.qualified)
    assert q.height == 2 and q["reason"].str.contains("'K' of MSFT is not a future").all()


def test_corrupt_and_truncated_files_fail_named(shared_data, tmp_path, lake, clock):
    raw = (shared_data / MBO).read_bytes()
    corrupt = tmp_path / "corrupt.mbo.dbn.zst"
    corrupt.write_bytes(raw[:5000] + bytes(200) + raw[5200:])
    cut = tmp_path / "cut.mbo.dbn.zst"
    cut.write_bytes(raw[: len(raw) // 2])
    with pa.CompressedInputStream(pa.OSFile(str(shared_data / MBO)), "zstd") as s:
        plain = s.read()
    short = tmp_path / "short.mbo.dbn"
    short.write_bytes(plain[:-7])  # last 56-byte MBO record incomplete: 49 bytes left
    notdbn = tmp_path / "text.dbn"
    notdbn.write_text("ts,price\n1,2\n")
    report = _ingest(lake, clock, [corrupt, cut, short, notdbn])
    by_file = {f.file.rsplit("/", 1)[-1]: f.message for f in report.failures}
    assert set(by_file) == {"corrupt.mbo.dbn.zst", "cut.mbo.dbn.zst", "short.mbo.dbn", "text.dbn"}
    assert all(name in message for name, message in by_file.items())
    assert "zstd" in by_file["corrupt.mbo.dbn.zst"] and "zstd" in by_file["cut.mbo.dbn.zst"]
    assert "truncated DBN data: 49 trailing bytes after 68,791 complete records" in by_file["short.mbo.dbn"]
    assert "not a DBN file" in by_file["text.dbn"]


def test_unsupported_schema_fails_with_the_list(shared_data, lake, clock):
    report = _ingest(lake, clock, [shared_data / "databento/test_data.statistics.v3.dbn.zst"])
    assert "schema statistics is not ingested" in report.failures[0].message


def test_header_reads_symbology(shared_data):
    header = read_header(shared_data / MBO)
    assert (header.dataset, header.schema, header.version) == ("GLBX.MDP3", "mbo", 3)
    assert header.symbols == {17077: "ESH4"}
    _, frames = text_frames(shared_data / "databento/test_data.ohlcv-1d.v3.dbn.zst")
    assert [f.height for f in frames] == [0]  # an empty file still yields one (empty) frame


def test_undefined_price_becomes_null_and_is_quarantined():
    frame = pl.DataFrame(
        {
            "ts_event": ["1609160400000000000"],
            "symbol": ["ESH1"],
            "action": ["T"],
            "side": ["N"],
            "price": [str((1 << 63) - 1)],
            "size": ["1"],
            "_row": [1],
            "_raw": ["raw"],
        },
        schema_overrides={"_row": pl.Int64},
    )
    from lakehouse.sources import databento_schemas as sch
    from lakehouse.validate import split_valid

    rows = sch.trades(frame, "CME", "GLBX.MDP3").with_columns(pl.lit(0, pl.Int64).alias("seq"))
    assert rows["price"].to_list() == [None]
    _, bad = split_valid(BRONZE_TRADES, rows)
    assert bad["_reason"].to_list() == ["price is missing"]


@pytest.mark.parametrize("schema", ["mbp-10"])
def test_mbp10_carries_level_and_book(shared_data, schema):
    chunks = _chunks(shared_data / f"databento/test_data.{schema}.v3.dbn.zst")
    events = next(c.data for c in chunks if c.table.qualified == BRONZE_BOOK_EVENTS.qualified)
    assert events["level"].to_list() == [9, 1] and events["action"].to_list() == ["cancel", "cancel"]
    assert '"bid_px":[3720.25,3720.0,' in events["book"][0]
    assert ts_value(datetime(2020, 12, 28, 13, tzinfo=UTC)) + 429_831 == _ns(events)[0]
