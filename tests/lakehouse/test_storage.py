"""Lake reads and writes: schema conformance, window replacement, MERGE upserts, table info."""

from __future__ import annotations

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from core.errors import TableError
from lakehouse.predicates import between
from lakehouse.storage import ts_value
from lakehouse.tables import SILVER_VENDOR_STATS, table

NS = pl.Datetime("ns", "UTC")


def stats(window_end: list[int], latency: list[float]) -> pl.DataFrame:
    n = len(window_end)
    return pl.DataFrame(
        {
            "source": ["a"] * n,
            "symbol_id": ["X:US"] * n,
            "window_start": pl.Series([0] * n).cast(NS),
            "window_end": pl.Series(window_end).cast(NS),
            "latency_ms": latency,
            "uptime": [1.0] * n,
            "reliability": [0.9] * n,
            "outlier_rate": [0.0] * n,
            "n_obs": [10] * n,
            "known_at": pl.Series(window_end).cast(NS),
        }
    )


def test_missing_column_is_named(lake):
    with pytest.raises(TableError, match=r"silver.vendor_stats: data lacks columns \['n_obs'\]"):
        lake.append(SILVER_VENDOR_STATS, stats([1], [5.0]).drop("n_obs"))


def test_replace_window_is_idempotent(lake):
    lake.append(SILVER_VENDOR_STATS, stats([1, 2, 3], [5.0, 6.0, 7.0]))
    pred = between("window_end", ts_value(2), ts_value(3))
    lake.replace_window(SILVER_VENDOR_STATS, stats([2, 3], [60.0, 70.0]), pred)
    once = lake.read(SILVER_VENDOR_STATS).sort("window_end")
    lake.replace_window(SILVER_VENDOR_STATS, stats([2, 3], [60.0, 70.0]), pred)
    assert_frame_equal(lake.read(SILVER_VENDOR_STATS).sort("window_end"), once)
    assert once.get_column("latency_ms").to_list() == [5.0, 60.0, 70.0]


def test_upsert_updates_matches_and_inserts_the_rest(lake):
    lake.upsert(SILVER_VENDOR_STATS, stats([1, 2], [5.0, 6.0]))
    lake.upsert(SILVER_VENDOR_STATS, stats([2, 3], [66.0, 7.0]))
    out = lake.read(SILVER_VENDOR_STATS).sort("window_end")
    assert out.get_column("latency_ms").to_list() == [5.0, 66.0, 7.0]
    info = lake.info(SILVER_VENDOR_STATS)
    assert info.rows == 3 and info.version == 1


def test_unknown_table_lists_known_ones():
    with pytest.raises(TableError, match="unknown table 'bronze.nope'; known: .*bronze.trades"):
        table("bronze.nope")


def test_reading_a_table_never_written_gives_the_declared_empty_frame(lake):
    df = lake.read(SILVER_VENDOR_STATS)
    assert df.height == 0 and df.schema["window_end"] == NS


def test_latest_matches_a_full_scan_whether_settled_by_stats_or_read(lake, clock):
    """Single-symbol files are settled from the Delta log, a mixed file and the file spanning
    ``upto`` are read: the result must equal max(ts) per group over the rows up to ``upto``."""
    from lakehouse.ingest import Batch, Chunk, Ingestor
    from lakehouse.tables import BRONZE_TRADES

    def trades(symbols, ts):
        n = len(ts)
        return pl.DataFrame(
            {
                "ts": pl.Series(ts).cast(NS),
                "symbol_id": symbols,
                "price": [1.0] * n,
                "size": [1.0] * n,
                "side": pl.Series([None] * n, dtype=pl.Int8),
                "exchange": ["Q"] * n,
                "conditions": pl.Series([None] * n, dtype=pl.String),
                "seq": list(range(n)),
            }
        )

    batches = [
        Batch("v", "a", "b1", [Chunk(BRONZE_TRADES, trades(["AAPL:US"] * 3, [10, 20, 30]))]),
        Batch("v", "b", "b2", [Chunk(BRONZE_TRADES, trades(["BAC:US"] * 2, [15, 25]))]),
        Batch("w", "c", "b3", [Chunk(BRONZE_TRADES, trades(["AAPL:US", "BAC:US", "AAPL:US"], [5, 40, 50]))]),
    ]
    Ingestor(lake, clock).run(batches)
    for upto in (12, 26, 30, 45, 100):
        got = lake.latest(BRONZE_TRADES, ["symbol_id", "source"], upto).sort("symbol_id", "source")
        rows = lake.read(BRONZE_TRADES).filter(pl.col("ts").dt.epoch("ns") <= upto)
        want = rows.group_by("symbol_id", "source").agg(pl.col("ts").max()).sort("symbol_id", "source")
        assert_frame_equal(got.select(want.columns), want, check_dtypes=True)


def test_float_columns_are_written_without_dictionary_pages(lake):
    import pyarrow.parquet as pq

    lake.append(SILVER_VENDOR_STATS, stats(list(range(1, 2001)), [5.0] * 2000))
    files = lake.delta(SILVER_VENDOR_STATS).file_uris()
    meta = pq.ParquetFile(files[0]).metadata.row_group(0)
    encodings = {meta.column(i).path_in_schema: meta.column(i).encodings for i in range(meta.num_columns)}
    assert not any("DICTIONARY" in e for e in encodings["latency_ms"])  # a float: plain pages
    assert any("DICTIONARY" in e for e in encodings["source"])  # a repeated string keeps its dictionary
