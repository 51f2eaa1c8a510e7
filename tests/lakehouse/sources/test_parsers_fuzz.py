"""Fuzz the text parsers: random lines never crash them, and every line is accounted for."""

from __future__ import annotations

import tempfile
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from lakehouse.ingest import Ingestor
from lakehouse.sources import databento_schemas as sch
from lakehouse.sources import lobster, tabular
from lakehouse.sources.lobster_parse import parse_pair
from lakehouse.storage import Lake

CLOCK = lambda: datetime(2026, 11, 1, tzinfo=UTC)  # noqa: E731
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

token = st.one_of(
    st.integers(-(10**12), 10**12).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.sampled_from(["", "-", ".", "NaN", "abc", "1e3", " 7 ", "34200.000000001", "9999999999", "-9999999999"]),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters='\r\n,"\x00'), max_size=6),
)


def _line(n_min: int, n_max: int):
    return st.lists(token, min_size=n_min, max_size=n_max).map(",".join)


def _good_message():
    return st.tuples(
        st.integers(34200, 57600),
        st.integers(0, 999_999_999),
        st.integers(1, 7),
        st.integers(1, 10**9),
        st.integers(0, 10**6),
        st.integers(1, 10**7),
        st.sampled_from([-1, 1]),
    ).map(lambda t: f"{t[0]}.{t[1]:09d},{t[2]},{t[3]},{t[4]},{t[5]},{t[6]}")


@FUZZ
@given(rows=st.lists(st.tuples(st.one_of(_good_message(), _line(0, 8)), _line(0, 6)), min_size=1, max_size=25))
def test_lobster_pair_accounts_for_every_line(rows):
    with tempfile.TemporaryDirectory() as tmp:
        msg = Path(tmp) / "XYZ_2012-06-21_0_1_message_1.csv"
        msg.write_text("\n".join(m for m, _ in rows) + "\n")
        book = Path(tmp) / "XYZ_2012-06-21_0_1_orderbook_1.csv"
        book.write_text("\n".join(b for _, b in rows) + "\n")
        events, rejected = parse_pair(msg, book, 1, date(2012, 6, 21), "America/New_York")
        n = len(msg.read_text().split("\n")) - 1
        assert events.height + len(rejected) == n
        assert sorted(events["_row"].to_list() + [r for r, _, _ in rejected]) == list(range(1, n + 1))
        assert all(reason for _, _, reason in rejected)


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
)  # each example writes a Delta table: no slow shrinking
@given(rows=st.lists(st.tuples(st.one_of(_good_message(), _line(0, 8)), _line(4, 4)), min_size=1, max_size=12))
def test_lobster_ingest_balances(rows):
    with tempfile.TemporaryDirectory() as tmp:
        msg = Path(tmp) / "XYZ_2012-06-21_0_1_message_1.csv"
        msg.write_text("\n".join(m for m, _ in rows) + "\n")
        (Path(tmp) / "XYZ_2012-06-21_0_1_orderbook_1.csv").write_text("\n".join(b for _, b in rows) + "\n")
        report = Ingestor(Lake(str(Path(tmp) / "lake")), CLOCK, frozenset({"XYZ:US"})).run(
            lobster.batches(lobster.Params(paths=[str(msg)]), CLOCK)
        )
        assert report.balanced and not report.failures
        book = next(a for a in report.accounts if a.table == "bronze.book_events")
        assert book.rows_read == len(msg.read_text().split("\n")) - 1


MAPPING = {
    "table": "bronze.bars",
    "source": "fuzz",
    "symbol_id": "AAPL:US",
    "null_values": ["null"],
    "columns": {"open": "Open", "high": "High", "low": "Low", "close": "Close", "volume": "Volume"},
    "constants": {"tf": "1d", "kind": "trade"},
    "timestamp": {
        "column": "Date",
        "format": "%Y-%m-%d",
        "tz": "America/New_York",
        "stamp": "start",
        "bar_length": "1d",
    },
}


@FUZZ
@given(
    rows=st.lists(
        st.tuples(st.one_of(st.dates().map(str), token), token, token, token, token, token), min_size=1, max_size=25
    )
)
def test_tabular_csv_accounts_for_every_row(rows):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.csv"
        path.write_text("Date,Open,High,Low,Close,Volume\n" + "\n".join(",".join(r) for r in rows) + "\n")
        mapping = tabular.Params(mapping=MAPPING).resolved()
        try:
            frame = tabular.read_frame(path, mapping)
        except Exception as exc:  # a file polars cannot read as CSV must fail as a named SourceError
            assert type(exc).__name__ == "SourceError" and path.name in str(exc)
            return
        good, rejected = tabular.parse_frame(frame, mapping, path)
        assert good.height + len(rejected) == frame.height
        assert all(isinstance(r.raw, str) and r.reason for r in rejected)


@FUZZ
@given(
    records=st.lists(
        st.tuples(
            st.sampled_from(["A", "C", "M", "R", "T", "F", "N", "?", ""]),
            st.sampled_from(["A", "B", "N", ""]),
            token,
            token,
            token,
            token,
        ),
        min_size=1,
        max_size=25,
    )
)
def test_databento_converters_never_drop_records(records):
    frame = pl.DataFrame(
        [
            {
                "ts_event": ts,
                "symbol": "ESH4",
                "action": a,
                "side": s,
                "price": px,
                "size": sz,
                "order_id": "1",
                "flags": fl,
                "_row": i + 1,
                "_raw": "x",
            }
            for i, (a, s, px, sz, ts, fl) in enumerate(records)
        ],
        schema_overrides={"_row": pl.Int64},
    )
    events = sch.book_events(frame, "CME")
    assert events.height == frame.height
    assert sch.trades(frame, "CME", "GLBX.MDP3").height == sum(1 for r in records if r[0] == "T")
    bars = frame.rename({"price": "open"}).with_columns(
        pl.col("open").alias("high"),
        pl.col("open").alias("low"),
        pl.col("open").alias("close"),
        pl.col("size").alias("volume"),
    )
    assert sch.bars(bars, "CME", "ohlcv-1m").height == frame.height
