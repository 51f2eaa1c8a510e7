"""The ingest engine: declared checks, in-batch dedupe, idempotent appends, quarantine, accounting."""

from __future__ import annotations

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from core.errors import SourceError
from lakehouse.ingest import Batch, Chunk, Ingestor, Rejected
from lakehouse.tables import BRONZE_INGEST_LOG, BRONZE_QUARANTINE, BRONZE_TRADES

NS = pl.Datetime("ns", "UTC")


def trades(ts, price, size=None, symbol="AAPL:US", seq=None) -> pl.DataFrame:
    n = len(ts)
    return pl.DataFrame(
        {
            "ts": pl.Series(ts, dtype=pl.Int64).cast(NS),
            "symbol_id": [symbol] * n,
            "price": pl.Series(price, dtype=pl.Float64),
            "size": pl.Series(size or [100.0] * n, dtype=pl.Float64),
            "side": pl.Series([None] * n, dtype=pl.Int8),
            "exchange": ["Q"] * n,
            "conditions": pl.Series([None] * n, dtype=pl.String),
            "seq": pl.Series(seq or [0] * n, dtype=pl.Int64),
        }
    )


def batch(df: pl.DataFrame, rejected=(), batch_id="b1", file="day.csv") -> Batch:
    return Batch("vendor", file, batch_id, [Chunk(BRONZE_TRADES, df, list(rejected))])


@pytest.fixture
def ingestor(lake, clock) -> Ingestor:
    return Ingestor(lake, clock, frozenset({"AAPL:US"}))


def test_bad_rows_are_quarantined_with_reasons(ingestor, lake):
    df = trades([1, 2, 3, 4, 5, 6], [10.0, -1.0, float("nan"), 11.0, float("inf"), 12.0], size=[1, 1, 1, -5, 1, 1])
    report = ingestor.run([batch(df, [Rejected(7, "1,2,x", "price is not a number")])])
    (acc,) = report.accounts
    assert (acc.rows_read, acc.rows_written, acc.duplicates, acc.quarantined) == (7, 2, 0, 5)
    q = lake.read(BRONZE_QUARANTINE).sort("row")
    assert q.get_column("row").to_list() == [2, 3, 4, 5, 7]
    assert q.get_column("reason").to_list() == [
        "price must be > 0",
        "price is not finite",
        "size must be >= 0",
        "price is not finite",
        "price is not a number",
    ]
    assert q.get_column("raw")[4] == "1,2,x"
    assert set(q.get_column("file")) == {"day.csv"} and set(q.get_column("table")) == {"bronze.trades"}


def test_out_of_order_and_unknown_symbols(ingestor, lake):
    df = pl.concat([trades([5, 3, 6], [1.0, 1.0, 1.0]), trades([1], [1.0], symbol="NOPE:US")])
    (acc,) = ingestor.run([batch(df)]).accounts
    assert acc.rows_written == 2 and acc.quarantined == 2
    reasons = sorted(lake.read(BRONZE_QUARANTINE).get_column("reason").to_list())
    assert reasons == ["ts goes backwards (out of order)", "unknown symbol NOPE:US"]


def test_second_ingest_adds_nothing_and_keeps_content(ingestor, lake):
    df = trades([1, 2, 3], [10.0, 10.5, -1.0])
    first = ingestor.run([batch(df)])
    content = lake.read(BRONZE_TRADES).sort("ts")
    quarantine = lake.read(BRONZE_QUARANTINE)
    second = ingestor.run([batch(df)])
    assert first.total("rows_written") == 2
    assert second.total("rows_written") == 0 and second.total("duplicates") == 2
    assert second.balanced
    assert_frame_equal(lake.read(BRONZE_TRADES).sort("ts"), content)
    assert_frame_equal(lake.read(BRONZE_QUARANTINE), quarantine)
    assert lake.read(BRONZE_INGEST_LOG).height == 1


def test_repeated_keys_inside_a_batch(ingestor, lake):
    # Row 2 repeats row 1 exactly (a duplicate); row 3 reuses the key with another price (a conflict).
    df = trades([1, 1, 1, 2], [10.0, 10.0, 10.2, 11.0])
    (acc,) = ingestor.run([batch(df)]).accounts
    assert (acc.rows_written, acc.duplicates, acc.quarantined) == (2, 1, 1)
    assert lake.read(BRONZE_QUARANTINE).get_column("reason")[0].startswith("duplicate key with different values")


def test_a_file_that_cannot_be_read_fails_alone(ingestor, lake):
    def broken():
        raise SourceError("broken.zip: not a zip file")
        yield  # pragma: no cover

    good = batch(trades([1], [10.0]), batch_id="b2", file="good.csv")
    report = ingestor.run([Batch("vendor", "broken.zip", "b1", broken()), good])
    assert [f.file for f in report.failures] == ["broken.zip"]
    assert "not a zip file" in report.failures[0].message
    assert report.total("rows_written") == 1
    q = lake.read(BRONZE_QUARANTINE)
    assert q.get_column("file").to_list() == ["broken.zip"] and "not a zip file" in q.get_column("reason")[0]


def test_lineage_columns_and_partition(ingestor, lake, clock):
    ingestor.run([batch(trades([1_700_000_000_123_456_789], [10.0]))])
    row = lake.read(BRONZE_TRADES).row(0, named=True)
    assert row["source"] == "vendor" and row["batch_id"] == "b1" and row["date"] == "2023-11-14"
    assert row["ingest_ts"] == clock()
    # Nanoseconds survive the Delta round trip (stored as int64).
    assert lake.read(BRONZE_TRADES).get_column("ts").dt.epoch("ns").item() == 1_700_000_000_123_456_789


row_values = st.tuples(
    st.integers(0, 50),
    st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=64), st.just(1.0)),
    st.one_of(st.floats(-5, 5), st.just(float("nan"))),
    st.sampled_from(["AAPL:US", "ZZZ:US"]),
    st.integers(0, 2),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(row_values, max_size=30))
def test_account_always_balances(tmp_path_factory, clock, rows):
    from lakehouse.storage import Lake

    lake = Lake(str(tmp_path_factory.mktemp("lake")))
    ingestor = Ingestor(lake, clock, frozenset({"AAPL:US"}))
    ts, price, size, sym, seq = (list(x) for x in zip(*rows)) if rows else ([], [], [], [], [])
    df = trades(ts, price, size, seq=seq).with_columns(pl.Series("symbol_id", sym, dtype=pl.String))
    (first,) = ingestor.run([batch(df)]).accounts
    assert first.balanced and first.rows_read == len(rows)
    stored = lake.read(BRONZE_TRADES).height
    assert stored == first.rows_written
    assert lake.read(BRONZE_QUARANTINE).height == first.quarantined
    (second,) = ingestor.run([batch(df)]).accounts
    assert second.balanced and second.rows_written == 0
    assert lake.read(BRONZE_TRADES).height == stored


def test_option_rows_are_checked_by_their_underlying(lake, clock):
    from datetime import date

    from lakehouse.tables import BRONZE_OPTIONS_CHAIN

    n = 2
    df = pl.DataFrame(
        {
            "ts": pl.Series([1, 1]).cast(NS),
            "underlying": ["AAPL:US", "NOPE:US"],
            "expiry": [date(2024, 1, 19)] * n,
            "strike": [100.0] * n,
            "right": ["C"] * n,
            **{
                c: pl.Series([None] * n, dtype=pl.Float64)
                for c in (
                    "bid",
                    "ask",
                    "last",
                    "volume",
                    "open_interest",
                    "iv",
                    "delta",
                    "gamma",
                    "vega",
                    "theta",
                    "rho",
                )
            },
        }
    )
    report = Ingestor(lake, clock, frozenset({"AAPL:US"})).run(
        [Batch("vendor", "chain.csv", "b1", [Chunk(BRONZE_OPTIONS_CHAIN, df)])]
    )
    assert report.total("rows_written") == 1
    assert lake.read(BRONZE_QUARANTINE).get_column("reason").to_list() == ["unknown symbol NOPE:US"]


@pytest.mark.parametrize(
    "ts, seq, ordered",
    [
        ([1, 2, 3], [0, 0, 0], True),
        ([1, 1, 2], [0, 1, 0], True),
        ([1, 1, 2], [0, 0, 0], False),  # a repeated (ts, seq): must go to the exact check
        ([2, 1, 3], [0, 0, 0], False),
    ],
)
def test_ordered_keys_fast_path(ts, seq, ordered):
    from lakehouse.validate import _strictly_ordered, split_duplicates

    df = trades(ts, [10.0] * len(ts), seq=seq)
    keys = ["symbol_id", "ts", "seq"]
    assert _strictly_ordered(df, keys) is ordered
    kept, exact, conflicts = split_duplicates(BRONZE_TRADES, df)
    assert kept.height + exact + conflicts.height == df.height
    assert exact == (0 if ordered or ts[0] != ts[1] or seq[0] != seq[1] else 1)
