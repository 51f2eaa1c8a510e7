"""DuckDB over the lake: every declared table that exists becomes a view ``layer.name``.

Tables are read through deltalake's Arrow dataset (DuckDB's delta extension needs a download and
is not used). Timestamp columns, stored as int64 nanoseconds, are exposed as ``TIMESTAMP_NS`` (UTC).
"""

from __future__ import annotations

import duckdb
import polars as pl

from lakehouse.storage import Lake
from lakehouse.tables import TABLES


def connect(lake: Lake) -> duckdb.DuckDBPyConnection:
    """Open an in-memory DuckDB with a view per existing table (schemas bronze, silver, gold)."""
    con = duckdb.connect()
    for spec in TABLES.values():
        ds = lake.dataset(spec)
        if ds is None:
            continue
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {spec.layer}")
        raw = f"__{spec.layer}_{spec.name}"
        con.register(raw, ds)
        ts_cols = set(spec.timestamp_columns)
        select = ", ".join(
            f'make_timestamp_ns("{c}") AS "{c}"' if c in ts_cols else f'"{c}"' for c in spec.column_names
        )
        con.execute(f'CREATE VIEW {spec.layer}."{spec.name}" AS SELECT {select} FROM {raw}')
    return con


def query(lake: Lake, sql: str) -> pl.DataFrame:
    """Run one SQL statement over the lake and return the result as a polars frame."""
    con = connect(lake)
    try:
        return con.sql(sql).pl()
    except duckdb.Error as exc:
        from core.errors import MpsError

        raise MpsError(f"SQL failed: {exc}") from exc
    finally:
        con.close()
