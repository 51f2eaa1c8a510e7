"""Hostile rows on ingest (issue 8): each is quarantined with its reason, never stored or wrapped,
and never drags good rows after it into quarantine."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
from ingest_helpers import CLOCK_AT, trades

from lakehouse.ingest import Batch, Chunk, Ingestor
from lakehouse.sources import tabular
from lakehouse.storage import Lake
from lakehouse.tables import BRONZE_BARS, BRONZE_QUARANTINE, BRONZE_TRADES
from lakehouse.validate import InstrumentRule

NS = pl.Datetime("ns", "UTC")


def _csv(tmp_path: Path, lines: list[str], **mapping) -> tuple[Lake, object]:
    path = tmp_path / "prints.csv"
    path.write_text("\n".join(["time,price,size,side", *lines]) + "\n")
    spec = {
        "table": "bronze.trades",
        "source": "csvx",
        "symbol_id": "AAPL:US",
        "columns": {"price": "price", "size": "size"},
        "timestamp": {"column": "time"},
        **mapping,
    }
    lake = Lake(str(tmp_path / "lake"))
    report = Ingestor(lake, lambda: CLOCK_AT).run(
        tabular.batches(tabular.Params(mapping=spec, paths=[str(path)]), None)
    )
    assert report.balanced and not report.failures, report.lines()
    return lake, report


def _reasons(lake: Lake) -> dict[int, str]:
    q = lake.read(BRONZE_QUARANTINE)
    return dict(zip(q["row"].to_list(), q["reason"].to_list(), strict=True))


def _stored_ts(lake: Lake) -> list[datetime]:
    return lake.read(BRONZE_TRADES).sort("ts", "seq")["ts"].to_list()


def test_iso_timestamps_with_z_or_offset_parse_without_a_format(tmp_path):
    lake, _ = _csv(
        tmp_path,
        ["2024-01-02T10:00:00Z,100,5,", "2024-01-02T12:00:01+02:00,100.01,5,", "2024-01-02T05:00:02-05:00,100.02,5,"],
    )
    assert not _reasons(lake)
    assert _stored_ts(lake) == [datetime(2024, 1, 2, 10, 0, s, tzinfo=UTC) for s in range(3)]


def test_a_side_column_of_buy_and_sell_maps_through_value_maps(tmp_path):
    lake, _ = _csv(
        tmp_path,
        ["2024-01-02T10:00:00Z,100,5,buy", "2024-01-02T10:00:01Z,100,5,SELL", "2024-01-02T10:00:02Z,100,5,hold"],
        columns={"price": "price", "size": "size", "side": "side"},
        value_maps={"side": {"buy": 1, "sell": -1, "SELL": -1}},
    )
    assert lake.read(BRONZE_TRADES).sort("ts")["side"].to_list() == [1, -1]
    assert _reasons(lake) == {4: "side: 'hold' is not in the mapping's value_maps.side (column side)"}


def test_timestamps_outside_int64_ns_are_quarantined_not_wrapped(tmp_path):
    lake, _ = _csv(
        tmp_path, ["2024-01-02T10:00:00Z,100,5,", "2300-01-01T00:00:00Z,100,5,", "1500-01-01T00:00:00Z,100,5,"]
    )
    reasons = _reasons(lake)
    assert set(reasons) == {3, 4}
    assert all("outside what int64 nanoseconds hold" in r for r in reasons.values())
    assert _stored_ts(lake) == [datetime(2024, 1, 2, 10, tzinfo=UTC)]


def test_a_row_far_in_the_future_is_quarantined_and_later_rows_are_not_out_of_order(tmp_path):
    lines = ["2024-01-02T10:00:00Z,100,5,", "2030-01-01T00:00:00Z,100,5,", "2024-01-02T10:00:01Z,100,5,"]
    lake, _ = _csv(tmp_path, [*lines, "2024-01-02T10:00:02Z,100,5,"])
    assert list(_reasons(lake).items()) == [(3, "ts is more than 24 h after the ingest clock")]
    assert len(_stored_ts(lake)) == 3  # the rows after the future one are stored, not "goes backwards"


def test_the_future_horizon_is_configurable(tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    rows = trades(3, 0).with_columns(pl.Series("ts", [CLOCK_AT + timedelta(hours=h) for h in (0, 2, 3)]).cast(NS))
    Ingestor(lake, lambda: CLOCK_AT, future_horizon=timedelta(hours=2, minutes=30)).run(
        [Batch("v", "f", "b", [Chunk(BRONZE_TRADES, rows)])]
    )
    assert lake.read(BRONZE_TRADES).height == 2 and lake.read(BRONZE_QUARANTINE).height == 1


def test_implausible_price_is_quarantined(tmp_path):
    lake, _ = _csv(tmp_path, ["2024-01-02T10:00:00Z,1e308,5,", "2024-01-02T10:00:01Z,100,5,"])
    assert _reasons(lake) == {2: "price above the plausible 1e+09"}


def test_a_bar_whose_high_is_below_its_low_is_quarantined(tmp_path):
    ts = pl.Series([datetime(2024, 1, 2, 15, m, tzinfo=UTC) for m in (1, 2, 3)]).cast(NS)
    bars = pl.DataFrame(
        {
            "ts": ts,
            "tf": ["1m"] * 3,
            "symbol_id": ["AAPL:US"] * 3,
            "kind": ["trade"] * 3,
            "open": [10.0, 10.0, 10.0],
            "high": [11.0, 9.0, 10.5],
            "low": [9.5, 10.5, 10.2],
            "close": [10.5, 10.0, 10.1],
            "volume": [1.0] * 3,
            "vwap": [10.2] * 3,
            "n_trades": [1] * 3,
        }
    )
    lake = Lake(str(tmp_path / "lake"))
    Ingestor(lake, lambda: CLOCK_AT).run([Batch("v", "bars.csv", "b", [Chunk(BRONZE_BARS, bars)])])
    assert _reasons(lake) == {2: "high < low", 3: "open/close outside [low, high]"}
    assert lake.read(BRONZE_BARS).height == 1


def test_an_exact_duplicate_print_is_quarantined_where_prints_are_unique(tmp_path):
    lines = ["2024-01-02T10:00:00.000000001Z,100,5,", "2024-01-02T10:00:00.000000001Z,100,5,"]
    lake, _ = _csv(tmp_path, lines, unique_prints=True)
    assert _reasons(lake) == {3: "duplicate print: repeats an earlier row in every field"}
    assert lake.read(BRONZE_TRADES)["seq"].to_list() == [0]
    # without the declaration (ms-stamped feeds: two real prints can match in every field) both stay
    kept, _ = _csv(tmp_path / "b", lines) if (tmp_path / "b").mkdir() is None else (None, None)
    assert kept.read(BRONZE_TRADES)["seq"].sort().to_list() == [0, 1]


def test_instrument_price_band_and_tick(tmp_path):
    rows = trades(4, 0).with_columns(pl.Series("price", [100.0, 100.005, 5000.0, 100.01]))
    lake = Lake(str(tmp_path / "lake"))
    rules = {"AAPL:US": InstrumentRule(price_min=1.0, price_max=1000.0, tick_size=0.01)}
    Ingestor(lake, lambda: CLOCK_AT, instruments=rules).run([Batch("v", "f", "b", [Chunk(BRONZE_TRADES, rows)])])
    assert _reasons(lake) == {
        2: "price 100.005 is not a multiple of the tick 0.01",
        3: "price 5000.0 outside the instrument's band [1.0, 1000.0]",
    }
    assert lake.read(BRONZE_TRADES)["price"].to_list() == [100.0, 100.01]


def test_a_later_file_correcting_a_stored_row_is_quarantined_not_dropped(tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    first = trades(3, 0)
    corrected = first.with_columns(pl.when(pl.int_range(3) == 1).then(99.0).otherwise(pl.col("price")).alias("price"))
    ingestor = Ingestor(lake, lambda: CLOCK_AT)
    ingestor.run([Batch("v", "day.csv", "b1", [Chunk(BRONZE_TRADES, first)])])
    (acc,) = ingestor.run([Batch("v", "day-corrected.csv", "b2", [Chunk(BRONZE_TRADES, corrected)])]).accounts
    assert (acc.rows_written, acc.duplicates, acc.quarantined) == (0, 2, 1)
    q = lake.read(BRONZE_QUARANTINE)
    assert q["reason"].to_list() == ["correction of a stored row (same key, other values); stored by batch b1"]
    assert '"price":99.0' in q["raw"].item() and q["batch_id"].item() == "b2"
    assert lake.read(BRONZE_TRADES).sort("ts")["price"].to_list() == first["price"].to_list()  # as first known


def test_instrument_rules_come_from_the_security_master(tmp_path):
    from lakehouse.security_master import instrument_frame, instrument_rules

    (tmp_path / "x.yaml").write_text(
        "- {symbol_id: 'AAPL:US', asset_class: equity, exchange: XNAS, calendar: XNYS, price_max: 1000.0,"
        " tick_check: true}\n- {symbol_id: 'BAC:US', asset_class: equity, exchange: XNYS, calendar: XNYS}\n"
    )
    assert instrument_rules(tmp_path) == {"AAPL:US": InstrumentRule(None, 1000.0, 0.01)}
    assert "price_max" not in instrument_frame(tmp_path).columns  # not a column of bronze.security_master
