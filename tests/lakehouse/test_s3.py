"""The lake on S3 (moto's server): idempotent ingest, SQL over S3 tables, concurrent writers."""

from __future__ import annotations

import multiprocessing as mp

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from lakehouse import security_master
from lakehouse.ingest import Batch, Chunk, Ingestor, text_batch_id
from lakehouse.sql import query
from lakehouse.storage import Lake
from lakehouse.tables import BRONZE_INGEST_LOG, BRONZE_SECURITY_MASTER, BRONZE_TRADES

NS = pl.Datetime("ns", "UTC")


@pytest.fixture
def s3_lake(s3_endpoint) -> Lake:
    return Lake(f"s3://{s3_endpoint.create_bucket()}/lake", s3_endpoint.storage_options())


def test_ingest_is_idempotent_on_s3(synthetic_trades, s3_lake, clock, s3_endpoint):
    trades = synthetic_trades(2000)
    ingestor = Ingestor(s3_lake, clock, security_master.known_symbols())

    def batch() -> Batch:
        return Batch("lean", "bac/20131007_trade.zip", "bac-20131007", [Chunk(BRONZE_TRADES, trades)])

    first = ingestor.run([batch(), *security_master.batches()])
    assert not first.failures and first.balanced
    assert first.total("rows_written") == 2000 + security_master.instrument_frame().height
    version = s3_lake.delta(BRONZE_TRADES).version()

    second = ingestor.run([batch(), *security_master.batches()])
    assert second.total("rows_written") == 0 and second.total("duplicates") == first.total("rows_written")
    assert s3_lake.delta(BRONZE_TRADES).version() == version  # nothing new: no commit
    stored = s3_lake.read(BRONZE_TRADES).sort("ts", "seq")
    assert_frame_equal(stored.select(trades.columns), trades)
    assert s3_lake.read(BRONZE_INGEST_LOG).height == 2  # one account per (batch, table), logged once

    keys = s3_endpoint.client().list_objects_v2(Bucket=s3_lake.root.split("/")[2], Prefix="lake/bronze/trades/")
    assert any(k["Key"].endswith(".parquet") for k in keys["Contents"])
    assert any("_delta_log/" in k["Key"] for k in keys["Contents"])


def test_sql_over_s3_tables(synthetic_trades, s3_lake, clock):
    trades = synthetic_trades(1500)
    Ingestor(s3_lake, clock, security_master.known_symbols()).run(
        [Batch("lean", "bac", "b1", [Chunk(BRONZE_TRADES, trades)]), *security_master.batches()]
    )
    out = query(
        s3_lake,
        "SELECT symbol_id, count(*) AS n, min(price) AS lo, max(price) AS hi, min(ts) AS first"
        " FROM bronze.trades GROUP BY symbol_id",
    )
    assert out.get_column("n").to_list() == [1500]
    assert out.get_column("lo").item() == trades.get_column("price").min()
    assert out.get_column("hi").item() == trades.get_column("price").max()
    assert out.get_column("first").dt.replace_time_zone("UTC").cast(NS).item() == trades.get_column("ts").min()
    joined = query(
        s3_lake,
        "SELECT m.exchange, count(*) AS n FROM bronze.trades t"
        " JOIN bronze.security_master m USING (symbol_id) GROUP BY 1",
    )
    assert joined.rows() == [("XNYS", 1500)]
    assert s3_lake.info(BRONZE_SECURITY_MASTER).rows == security_master.instrument_frame().height


def _append_slices(root: str, options: dict, frames: list[pl.DataFrame], barrier) -> int:
    """Child process: wait for the other writer, then append each frame as its own commit."""
    lake = Lake(root, options)
    barrier.wait(timeout=60)
    return sum(lake.append(BRONZE_TRADES, f) for f in frames)


def test_two_concurrent_writers_lose_nothing(synthetic_trades, s3_lake, clock):
    trades = synthetic_trades(1200).with_columns(
        pl.lit("lean").alias("source"),
        pl.lit(clock()).cast(NS).alias("ingest_ts"),
        pl.lit(text_batch_id("bac", 1)).alias("batch_id"),
        pl.col("ts").dt.strftime("%Y-%m-%d").alias("date"),
    )
    s3_lake.append(BRONZE_TRADES, trades.head(200))  # the table exists before the race (version 0)
    mine, theirs = trades.slice(200, 500), trades.slice(700, 500)
    per_writer = 500 // 125
    ctx = mp.get_context("spawn")  # never fork after deltalake has started its runtime
    barrier = ctx.Manager().Barrier(2)
    with ctx.Pool(2) as pool:
        results = [
            pool.apply_async(
                _append_slices,
                (s3_lake.root, s3_lake.storage_options, [part for part in frame.iter_slices(125)], barrier),
            )
            for frame in (mine, theirs)
        ]
        written = [r.get(timeout=300) for r in results]
    assert written == [500, 500]
    dt = s3_lake.delta(BRONZE_TRADES)
    assert dt.version() == 2 * per_writer  # version 0 plus one commit per append, none lost
    assert len(dt.history()) == 2 * per_writer + 1
    stored = s3_lake.read(BRONZE_TRADES).sort("ts", "seq")
    assert stored.height == 1200  # every row of both writers; the content check follows
    assert_frame_equal(stored.select(trades.columns), trades.sort("ts", "seq"))
