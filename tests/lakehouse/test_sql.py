"""`mps sql`: DuckDB over the lake's tables as views layer.name, no extension download."""

from __future__ import annotations

import polars as pl
import pytest
from typer.testing import CliRunner

from core.errors import MpsError
from lakehouse.ingest import Batch, Chunk, Ingestor
from lakehouse.sql import query
from lakehouse.tables import BRONZE_TRADES
from mps.cli import app


@pytest.fixture
def filled(lake, clock):
    df = pl.DataFrame(
        {
            "ts": pl.Series([1_700_000_000_000_000_001, 1_700_000_000_000_000_002]).cast(pl.Datetime("ns", "UTC")),
            "symbol_id": ["AAPL:US", "AAPL:US"],
            "price": [10.0, 11.0],
            "size": [1.0, 3.0],
            "side": pl.Series([1, -1], dtype=pl.Int8),
            "exchange": ["Q", "Q"],
            "conditions": [None, None],
            "seq": [0, 0],
        }
    ).with_columns(pl.col("conditions").cast(pl.String))
    Ingestor(lake, clock).run([Batch("v", "f", "b", [Chunk(BRONZE_TRADES, df)])])
    return lake


def test_views_per_layer_with_nanosecond_timestamps(filled):
    out = query(
        filled,
        "SELECT symbol_id, sum(price*size) AS notional, max(ts) AS last, typeof(max(ts)) AS t "
        "FROM bronze.trades GROUP BY 1",
    )
    assert out.row(0) == ("AAPL:US", 43.0, out["last"][0], "TIMESTAMP_NS")
    assert out["last"].dt.epoch("ns")[0] == 1_700_000_000_000_000_002
    assert query(filled, "SELECT rows_written FROM bronze.ingest_log").item() == 2


def test_bad_sql_is_an_mps_error(filled):
    with pytest.raises(MpsError, match="SQL failed"):
        query(filled, "SELECT * FROM bronze.nope")


def test_cli_sql_and_tables(filled):
    runner = CliRunner()
    res = runner.invoke(app, ["sql", "SELECT count(*) AS n FROM bronze.trades", "--lake", filled.root, "-f", "csv"])
    assert res.exit_code == 0, res.output
    assert res.output.strip().splitlines() == ["n", "2"]
    res = runner.invoke(app, ["tables", "--lake", filled.root])
    assert res.exit_code == 0 and "bronze.trades" in res.output and "not written yet" in res.output


def test_catalog_registers_tables_declared_beside_their_writers():
    from mps.catalog import all_tables

    tables = all_tables()
    assert {"bronze.watermarks", "gold.tick_features", "silver.bars", "gold.signals"} <= set(tables)
