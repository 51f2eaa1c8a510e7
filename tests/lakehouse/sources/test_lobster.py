"""LOBSTER adapter: real AAPL sample pair, idempotent ingest, quarantine, misaligned files."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from lakehouse.ingest import Ingestor
from lakehouse.sources import lobster
from lakehouse.storage import ts_value
from lakehouse.tables import BRONZE_BOOK_EVENTS, BRONZE_QUARANTINE, BRONZE_TRADES

MSG = "AAPL_2012-06-21_34200000_57600000_message_10.csv"


def _ingest(lake, clock, paths, **kw):
    params = lobster.Params(paths=[str(p) for p in paths], **kw)
    return Ingestor(lake, clock, frozenset({"AAPL:US", "MSFT:US"})).run(lobster.batches(params, clock))


def _write_pair(folder: Path, msg_lines: list[str], book_lines: list[str], levels: int = 1) -> Path:
    msg = folder / f"MSFT_2012-06-21_34200000_57600000_message_{levels}.csv"
    msg.write_text("\n".join(msg_lines) + "\n")
    (folder / msg.name.replace("_message_", "_orderbook_")).write_text("\n".join(book_lines) + "\n")
    return msg


def test_real_pair_counts_times_and_prices(shared_data, lake, clock):
    folder = shared_data / "lobster"
    lines = (folder / MSG).read_text().splitlines()
    report = _ingest(lake, clock, [folder])
    assert report.balanced and not report.failures
    events = lake.read(BRONZE_BOOK_EVENTS).sort("ts", "seq")
    assert events.height == len(lines) == 999  # SOURCE.txt says 998: its last line has no newline
    first, last = events.row(0, named=True), events.row(-1, named=True)
    # 34200.004241176 s after midnight ET on 2012-06-21 (EDT, UTC-4) -> 13:30:00.004241176 UTC
    ns = events["ts"].dt.epoch("ns")
    assert ns[0] == ts_value(datetime(2012, 6, 21, 13, 30, tzinfo=UTC)) + 4_241_176
    assert (first["action"], first["side"], first["price"], first["size"], first["order_id"]) == (
        "add",
        1,
        585.33,
        18.0,
        16113575,
    )
    book = json.loads(first["book"])
    assert book["ask_px"][0] == 585.94 and book["ask_sz"][0] == 200 and book["bid_px"][0] == 585.33
    # the last message, 34249.086375027 s after midnight ET: a buy limit order of 18 at 585.35
    assert ns[-1] == ts_value(datetime(2012, 6, 21, 13, 30, 49, tzinfo=UTC)) + 86_375_027
    assert (last["action"], last["side"], last["price"], last["size"], last["order_id"]) == (
        "add",
        1,
        585.35,
        18.0,
        18259338,
    )
    assert len(book["bid_px"]) == 10
    assert ns[-1] == ts_value(datetime(2012, 6, 21, 13, 30, 49, tzinfo=UTC)) + 86_375_027
    n_type = {t: sum(1 for ln in lines if ln.split(",")[1] == str(t)) for t in range(1, 8)}
    counts = dict(events.group_by("action").len().iter_rows())
    assert counts == {
        a: n_type[t] for t, a in ((1, "add"), (3, "delete"), (4, "fill"), (5, "fill_hidden")) if n_type[t]
    }
    trades = lake.read(BRONZE_TRADES).sort("ts", "seq")
    assert trades.height == n_type[4] == 98
    # first visible execution hits a SELL order (direction -1) at 585.74: the aggressor bought
    assert trades.row(0, named=True)["price"] == 585.74 and trades.row(0, named=True)["side"] == 1
    assert trades["side"].to_list() == [-d for d in (int(ln.split(",")[5]) for ln in lines if ln.split(",")[1] == "4")]


def test_second_ingest_writes_nothing(shared_data, lake, clock):
    folder = shared_data / "lobster"
    _ingest(lake, clock, [folder])
    before = lake.read(BRONZE_BOOK_EVENTS).drop("ingest_ts").sort("ts", "seq")
    again = _ingest(lake, clock, [folder])
    assert again.total("rows_written") == 0 and again.total("duplicates") == 999 + 98
    assert lake.read(BRONZE_BOOK_EVENTS).drop("ingest_ts").sort("ts", "seq").equals(before)


def test_bad_lines_quarantine_their_event(tmp_path, lake, clock):
    msg = _write_pair(
        tmp_path,
        [
            "34200.1,1,11,100,300000,1",
            "34200.2,1,12,abc,300100,-1",  # bad size in the message file
            "34200.3,4,11,50,300000,1",
            "34200.4,1,13,10,300200,-1",  # bad orderbook line below
            "34200.5,9,14,10,300200,-1",  # unknown event type
            "34200.6,7,0,0,-1,-1",  # trading halt
        ],
        [
            "300100,100,300000,100",
            "300100,100,300000,100",
            "300100,100,300000,50",
            "300100,x,300000,50",
            "300100,100,300000,50",
            "9999999999,0,-9999999999,0",
        ],
    )
    report = _ingest(lake, clock, [msg])
    assert report.balanced
    book = next(a for a in report.accounts if a.table == BRONZE_BOOK_EVENTS.qualified)
    assert (book.rows_read, book.rows_written, book.quarantined) == (6, 3, 3)
    q = lake.read(BRONZE_QUARANTINE).sort("row")
    assert q["row"].to_list() == [2, 4, 5]
    assert "size is not an integer" in q["reason"][0] and msg.name in q["reason"][0]
    assert "orderbook" in q["reason"][1] and "300100,x,300000,50" in q["raw"][1]
    assert "event type" in q["reason"][2]
    events = lake.read(BRONZE_BOOK_EVENTS).sort("ts")
    halt = events.row(-1, named=True)
    assert halt["action"] == "halt" and halt["price"] is None
    assert json.loads(halt["book"]) == {"ask_px": [None], "ask_sz": [None], "bid_px": [None], "bid_sz": [None]}
    trades = lake.read(BRONZE_TRADES)
    assert trades["side"].to_list() == [-1] and trades["price"].to_list() == [30.0]


def test_misaligned_pair_fails_naming_both_files(tmp_path, lake, clock):
    msg = _write_pair(tmp_path, ["34200.1,1,11,100,300000,1", "34200.2,1,12,100,300100,-1"], ["300100,100,300000,100"])
    report = _ingest(lake, clock, [msg])
    assert not report.accounts and len(report.failures) == 1
    message = report.failures[0].message
    assert msg.name in message and "orderbook_1.csv" in message and "line-aligned" in message
    assert lake.read(BRONZE_QUARANTINE)["reason"].str.contains("line-aligned").all()


def test_hidden_executions_become_trades_when_asked(shared_data, lake, clock):
    report = _ingest(lake, clock, [shared_data / "lobster"], trade_types=[4, 5])
    trades = lake.read(BRONZE_TRADES)
    assert report.balanced and trades.height == 98 + 61
    assert trades.filter(pl.col("conditions") == "hidden").height == 61


def test_unknown_param_is_rejected():
    with pytest.raises(Exception, match="tz_name"):
        lobster.Params(paths=["x"], tz_name="UTC")


def test_message_file_without_orderbook_ingests_events_and_trades_with_a_warning(tmp_path, lake, clock, caplog):
    msg = _write_pair(tmp_path, ["34200.1,1,11,100,300000,1", "34200.3,4,11,50,300000,1"], [])
    msg.with_name(msg.name.replace("_message_", "_orderbook_")).unlink()
    report = _ingest(lake, clock, [msg])
    assert report.balanced and not report.failures
    assert "no orderbook file" in caplog.text and msg.name in caplog.text
    events = lake.read(BRONZE_BOOK_EVENTS).sort("ts")
    assert events["action"].to_list() == ["add", "fill"] and events["book"].null_count() == 2
    assert lake.read(BRONZE_TRADES)["price"].to_list() == [30.0]
