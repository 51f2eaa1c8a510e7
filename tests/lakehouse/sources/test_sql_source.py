"""The PostgreSQL source against a real server loaded with real LEAN trades and option rows."""

from __future__ import annotations

import json
import socket
from datetime import date

import polars as pl
import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from core.errors import ConfigError, SourceError
from lakehouse.ingest import Ingestor, text_batch_id
from lakehouse.security_master import known_symbols
from lakehouse.sources.registry import parse_params
from lakehouse.sources.sql import READERS, SEED_DDL, WATERMARKS, Params, batches, split_unmapped
from lakehouse.tables import BRONZE_OPTIONS_CHAIN, BRONZE_QUARANTINE, BRONZE_TRADES

TRADE_COLS = ["symbol", "ts", "price", "size", "exchange", "conditions", "side"]
OPTION_COLS = [
    "underlying",
    "ts",
    "expiry",
    "strike",
    "option_type",
    "bid",
    "ask",
    "last",
    "volume",
    "open_interest",
    "implied_volatility",
    "delta",
    "gamma",
    "vega",
    "theta",
    "rho",
]


def stock_trades_rows(trades: pl.DataFrame) -> pl.DataFrame:
    """Bronze trades payload (the ``synthetic_trades`` fixture) as the seed's stock_trades rows."""
    return trades.select(
        pl.col("symbol_id").str.replace(":US", "", literal=True).alias("symbol"),
        pl.col("ts").dt.cast_time_unit("us"),
        "price",
        pl.col("size").cast(pl.Int64),
        "exchange",
        "conditions",
        pl.lit(None, pl.String).alias("side"),
    )


def option_rows(ticker: str = "TWX", day: str = "20140605") -> pl.DataFrame:
    """A small option chain snapshot (16:00 ET) as options_data rows, written by the test itself."""
    expiries = ["20140621", "20140719", "20141018"]
    strikes = [60.0, 65.0, 70.0, 75.0]
    rows = [(e, k, r) for e in expiries for k in strikes for r in ("call", "put")]
    n = len(rows)
    snap = pl.datetime(int(day[:4]), int(day[4:6]), int(day[6:]), 16, time_zone="America/New_York")
    return (
        pl.DataFrame(
            {
                "underlying": [ticker] * n,
                "expiry": [e for e, _, _ in rows],
                "strike": [k for _, k, _ in rows],
                "option_type": [r for _, _, r in rows],
                "last": [round(0.5 + 0.1 * i, 2) for i in range(n)],
                "volume": [10 * i for i in range(n)],
                "open_interest": [100 + 7 * i for i in range(n)],
                "implied_volatility": [0.2 + 0.001 * i for i in range(n)],
                "delta": [0.5 if r == "call" else -0.5 for _, _, r in rows],
                "gamma": [0.05] * n,
                "vega": [0.1] * n,
                "theta": [-0.02] * n,
                "rho": [0.01] * n,
            }
        )
        .with_columns(
            snap.dt.convert_time_zone("UTC").dt.cast_time_unit("us").alias("ts"),
            pl.col("expiry").str.to_date("%Y%m%d"),
            pl.lit(None, pl.Float64).alias("bid"),
            pl.lit(None, pl.Float64).alias("ask"),
        )
        .select(OPTION_COLS)
    )


def insert(dsn: str, table: str, frame: pl.DataFrame) -> None:
    """COPY rows into a seed table (ids come from its bigserial)."""
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        with cur.copy(f"COPY {table} ({', '.join(frame.columns)}) FROM STDIN") as copy:
            for row in frame.iter_rows():
                copy.write_row(row)


@pytest.fixture
def seed_db(postgres_server) -> str:
    """A fresh database with the SPECS seed tables; returns its DSN."""
    dsn = postgres_server.dsn(postgres_server.create_database("specs"))
    with psycopg.connect(dsn) as conn:
        conn.execute(SEED_DDL.read_text())
    return dsn


def ingest(lake, clock, params: Params):
    return Ingestor(lake, clock, known_symbols()).run(batches(params, clock, lake))


def totals(report, table: str) -> tuple[int, int, int, int]:
    accs = [a for a in report.accounts if a.table == table]
    return tuple(sum(getattr(a, k) for a in accs) for k in ("rows_read", "rows_written", "duplicates", "quarantined"))


def test_runs_read_only_new_rows(synthetic_trades, seed_db, lake, clock):
    trades = stock_trades_rows(synthetic_trades(4000))
    options = option_rows()
    insert(seed_db, "stock_trades", trades.head(3000))
    insert(seed_db, "options_data", options)
    params = Params(dsn=seed_db, chunk_size=700)

    first = ingest(lake, clock, params)
    assert not first.failures and first.balanced
    assert totals(first, "bronze.trades") == (3000, 3000, 0, 0)
    assert totals(first, "bronze.options_chain") == (options.height, options.height, 0, 0)

    second = ingest(lake, clock, params)
    assert second.accounts == [] and second.failures == []

    bad = pl.DataFrame(
        {
            "symbol": ["BAC", "BAC", "ZZZZ"],
            "ts": trades.get_column("ts").tail(3),
            "price": [None, 13.9, 13.9],
            "size": [100, -5, 100],
            "exchange": ["P"] * 3,
            "conditions": ["0"] * 3,
            "side": ["buy", "sell", None],
        },
        schema_overrides={"price": pl.Float64, "ts": trades.schema["ts"]},
    )
    insert(seed_db, "stock_trades", trades.slice(3000, 1000))
    insert(seed_db, "stock_trades", bad)
    third = ingest(lake, clock, params)
    assert totals(third, "bronze.trades") == (1003, 1000, 0, 3)
    assert [a.file for a in third.accounts] == [third.accounts[0].file]
    assert third.accounts[0].file.endswith("/public.stock_trades?id=3001..4003")

    stored = lake.read(BRONZE_TRADES).sort("seq")
    assert stored.height == 4000 and stored.get_column("seq").to_list() == list(range(1, 4001))
    expected = trades.select(
        pl.col("ts").dt.cast_time_unit("ns"),
        pl.lit("BAC:US").alias("symbol_id"),
        "price",
        pl.col("size").cast(pl.Float64),
        pl.lit(None, pl.Int8).alias("side"),
        "exchange",
        "conditions",
        pl.int_range(1, 4001, dtype=pl.Int64).alias("seq"),
    )
    assert_frame_equal(stored.select(expected.columns), expected)
    assert set(stored.get_column("source")) == {"sql"}

    chain = lake.read(BRONZE_OPTIONS_CHAIN).sort("expiry", "strike", "right")
    want = options.sort("expiry", "strike", "option_type")
    assert chain.get_column("underlying").unique().to_list() == ["TWX:US"]
    assert (
        chain.get_column("right").to_list()
        == want.get_column("option_type").replace_strict({"call": "C", "put": "P"}).to_list()
    )
    assert chain.get_column("strike").to_list() == want.get_column("strike").to_list()
    assert chain.get_column("iv").to_list() == want.get_column("implied_volatility").to_list()
    assert chain.get_column("expiry").min() >= date(2014, 6, 5)

    wm = lake.read(WATERMARKS).sort("last_id")
    assert wm.filter(pl.col("source_table") == "public.stock_trades").get_column("last_id").to_list() == [3000, 4003]
    assert wm.filter(pl.col("source_table") == "public.options_data").get_column("last_id").to_list() == [
        options.height
    ]


def test_bad_rows_are_quarantined_with_their_json(seed_db, lake, clock):
    rows = pl.DataFrame(
        {
            "symbol": ["BAC", "BAC", "ZZZZ", "BAC"],
            "ts": ["2013-10-07T13:30:00Z", "2013-10-07T13:30:01Z", "2013-10-07T13:30:02Z", "2013-10-07T13:30:03Z"],
            "price": [None, 13.95, 13.96, 13.97],
            "size": [100, -5, 200, 300],
            "exchange": ["P", "Q", "N", "N"],
            "conditions": [None, "0", "0", "0"],
            "side": ["buy", "sell", None, "buy"],
        },
        schema_overrides={"price": pl.Float64},
    ).with_columns(pl.col("ts").str.to_datetime(time_zone="UTC"))
    insert(seed_db, "stock_trades", rows)
    report = ingest(lake, clock, Params(dsn=seed_db, tables=("stock_trades",)))
    assert totals(report, "bronze.trades") == (4, 1, 0, 3)
    q = lake.read(BRONZE_QUARANTINE).sort("row")
    assert q.get_column("row").to_list() == [1, 2, 3]
    assert q.get_column("reason").to_list() == ["price is missing", "size must be >= 0", "unknown symbol ZZZZ:US"]
    raw = [json.loads(r) for r in q.get_column("raw")]
    assert raw[0] == {
        "id": 1,
        "symbol": "BAC",
        "ts": "2013-10-07T13:30:00.000000Z",
        "price": None,
        "size": 100,
        "exchange": "P",
        "conditions": None,
        "side": "buy",
    }
    assert raw[2]["symbol"] == "ZZZZ" and raw[1]["size"] == -5
    (kept,) = lake.read(BRONZE_TRADES).iter_rows(named=True)
    assert (kept["seq"], kept["side"], kept["price"]) == (4, 1, 13.97)


def test_unmapped_symbols_and_bad_option_types_are_quarantined(seed_db, lake, clock):
    opts = pl.DataFrame(
        {
            "underlying": ["twx", "XYZ", "TWX"],
            "ts": ["2014-06-05T20:00:00Z"] * 3,
            "expiry": [date(2014, 6, 20)] * 3,
            "strike": [80.0, 80.0, 85.0],
            "option_type": ["call", "put", "put"],
            "last": [1.5, 1.0, 2.0],
        }
    ).with_columns(pl.col("ts").str.to_datetime(time_zone="UTC"))
    insert(seed_db, "options_data", opts)
    params = Params(
        dsn=seed_db, tables=("options_data",), symbols={"twx": "TWX:US", "TWX": "TWX:US"}, default_suffix=None
    )
    report = ingest(lake, clock, params)
    assert totals(report, "bronze.options_chain") == (3, 2, 0, 1)
    (reason,) = lake.read(BRONZE_QUARANTINE).get_column("reason").to_list()
    assert reason == "unknown symbol XYZ (not in the sql source's symbol mapping)"
    assert lake.read(BRONZE_OPTIONS_CHAIN).get_column("underlying").to_list() == ["TWX:US", "TWX:US"]


def test_batches_stream_in_chunks_with_deterministic_ids(synthetic_trades, seed_db, lake, clock):
    insert(seed_db, "stock_trades", stock_trades_rows(synthetic_trades(2500)))
    params = Params(dsn=seed_db, tables=("stock_trades",), chunk_size=300, batch_rows=1000)
    seen = []
    ingestor = Ingestor(lake, clock, known_symbols())
    for b in batches(params, clock, lake):
        chunks = list(b.chunks)  # the engine would consume these; do it here to look at them
        seen.append((b.batch_id, b.file, [c.data.height for c in chunks]))
        b.chunks = chunks
        ingestor.run([b])
    identity = f"postgresql://127.0.0.1:{params_port(seed_db)}/{params_db(seed_db)}"
    assert [s[0] for s in seen] == [
        text_batch_id(identity, "public.stock_trades", lo, hi) for lo, hi in ((0, 1000), (1000, 2000), (2000, 2500))
    ]
    assert [s[2] for s in seen] == [[300, 300, 300, 100]] * 2 + [[300, 200]]
    assert lake.read(WATERMARKS).get_column("last_id").sort().to_list() == [1000, 2000, 2500]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def params_port(dsn: str) -> int:
    return int(dict(p.split("=") for p in dsn.split())["port"])


def params_db(dsn: str) -> str:
    return dict(p.split("=") for p in dsn.split())["dbname"]


def test_crash_before_the_watermark_advance_rereads_harmlessly(synthetic_trades, seed_db, lake, clock):
    insert(seed_db, "stock_trades", stock_trades_rows(synthetic_trades(1200)))
    params = Params(dsn=seed_db, tables=("stock_trades",), chunk_size=500)
    ingestor = Ingestor(lake, clock, known_symbols())
    gen = batches(params, clock, lake)
    first = next(gen)
    (acc,) = ingestor.ingest_batch(first)  # rows committed to bronze ...
    assert acc.rows_written == 1200
    gen.close()  # ... then the process dies before asking for the next batch
    assert lake.read(WATERMARKS).height == 0

    again = ingest(lake, clock, params)
    assert totals(again, "bronze.trades") == (1200, 0, 1200, 0)
    assert lake.read(BRONZE_TRADES).height == 1200
    assert lake.read(WATERMARKS).get_column("last_id").to_list() == [1200]
    assert ingest(lake, clock, params).accounts == []


def test_unconsumed_batch_keeps_the_watermark(synthetic_trades, seed_db, lake, clock):
    insert(seed_db, "stock_trades", stock_trades_rows(synthetic_trades(50)))
    params = Params(dsn=seed_db, tables=("stock_trades",))
    assert len(list(batches(params, clock, lake))) == 1  # materialised, never written
    assert lake.read(WATERMARKS).height == 0
    assert totals(ingest(lake, clock, params), "bronze.trades") == (50, 50, 0, 0)


def test_connection_failure_names_the_server_not_the_password(postgres_server, seed_db, lake, clock):
    port = free_port()
    with pytest.raises(SourceError) as refused:
        list(batches(Params(host="127.0.0.1", port=port, dbname="specs", password="hunter2-secret"), clock, lake))
    assert f"127.0.0.1:{port}/specs" in str(refused.value) and "hunter2-secret" not in str(refused.value)

    wrong = seed_db.replace(postgres_server.password, "wrong-pw-42")
    with pytest.raises(SourceError) as denied:
        list(batches(Params(dsn=wrong), clock, lake))
    message = str(denied.value)
    assert f"127.0.0.1:{postgres_server.port}/{params_db(seed_db)}" in message
    assert "password authentication failed" in message and "wrong-pw-42" not in message


def test_params_are_strict():
    with pytest.raises(ConfigError, match="chunk_sise"):
        parse_params("sql", {"chunk_sise": 10})
    with pytest.raises(ConfigError, match="tables"):
        parse_params("sql", {"tables": ["orders"]})
    assert "secret" not in repr(parse_params("sql", {"dsn": "host=x password=secret"}))


def test_run_source_gives_the_adapter_its_lake(synthetic_trades, seed_db, lake, clock):
    from lakehouse.run_source import run_source

    insert(seed_db, "stock_trades", stock_trades_rows(synthetic_trades(300)))
    raw = {"dsn": seed_db, "tables": ["stock_trades"]}
    assert totals(run_source(lake, "sql", raw, clock), "bronze.trades") == (300, 300, 0, 0)
    assert run_source(lake, "sql", raw, clock).accounts == []


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.one_of(st.none(), st.text(max_size=6)),
            st.integers(-(2**40), 2**51),
            st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
            st.one_of(st.none(), st.integers(-10, 10**6)),
            st.one_of(st.none(), st.sampled_from(["buy", "sell", "BUY", "x", ""])),
        ),
        max_size=40,
    ),
    st.sampled_from([":US", None]),
)
def test_trade_mapping_accounts_for_every_row(rows, suffix):
    """Any delivered row is either mapped or rejected with its JSON; nothing crashes or vanishes."""
    reader = READERS["stock_trades"]
    raw = pl.DataFrame(
        [(i + 1, sym, ts, price, size, "P", None, side) for i, (sym, ts, price, size, side) in enumerate(rows)],
        schema=reader.raw_schema,
        orient="row",
    )
    params = Params(symbols={"bac": "BAC:US"}, default_suffix=suffix)
    good, rejected = split_unmapped(reader.mapper(raw, params), reader.symbol_column)
    assert good.height + len(rejected) == raw.height
    assert set(good.get_column("_row")).isdisjoint(r.row for r in rejected)
    assert all(json.loads(r.raw)["id"] == r.row for r in rejected)
    assert good.get_column("symbol_id").null_count() == 0
    assert good.columns[:8] == [c.name for c in BRONZE_TRADES.payload_columns]
