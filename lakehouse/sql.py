"""DuckDB over the lake: every declared table that exists becomes a view ``layer.name``.

Tables are read through deltalake's Arrow dataset (DuckDB's delta extension needs a download and
is not used). Timestamp columns, stored as int64 nanoseconds, are exposed as ``TIMESTAMP_NS`` (UTC).

Read-only by default: DuckDB's file system access is switched off and the configuration locked, so
a statement can read the lake's views but cannot ``COPY ... TO`` a file (say, over a table's
``_delta_log``), ``ATTACH`` a database file, read other files or install extensions. The views do
not need file access: deltalake reads the tables and hands DuckDB Arrow data. ``allow_writes``
gives DuckDB's full power for users' own files. A table that cannot be read is left out with a
note naming it; the other tables stay queryable.
"""

from __future__ import annotations

import duckdb
import polars as pl

from core.errors import MpsError, TableError
from lakehouse.storage import Lake
from lakehouse.tables import TABLES

READ_ONLY = {
    "enable_external_access": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
}


def connect(lake: Lake, allow_writes: bool = False, skipped: list[str] | None = None) -> duckdb.DuckDBPyConnection:
    """Open an in-memory DuckDB with a view per readable table (schemas bronze, silver, gold).

    Tables that cannot be read are appended to ``skipped`` as messages instead of failing the rest.
    """
    con = duckdb.connect(config={} if allow_writes else dict(READ_ONLY))
    for spec in TABLES.values():
        try:
            ds = lake.dataset(spec)
        except TableError as exc:
            if skipped is None:
                raise
            skipped.append(str(exc))
            continue
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
    if not allow_writes:
        con.execute("SET lock_configuration = true")
    return con


def query(lake: Lake, sql: str, allow_writes: bool = False, skipped: list[str] | None = None) -> pl.DataFrame:
    """Run one SQL statement over the lake and return the result as a polars frame.

    Without ``skipped`` a damaged table fails the query naming it; with it, the query runs over
    the readable tables and the list says which were left out.
    """
    con = connect(lake, allow_writes, skipped)
    try:
        result = con.sql(sql)
        return result.pl() if result is not None else pl.DataFrame()
    except duckdb.Error as exc:
        hint = ""
        if not allow_writes and "disabled by configuration" in str(exc):
            hint = (
                " (mps sql is read-only: file access, writes and extension installs are off; --allow-writes lifts it)"
            )
        raise MpsError(f"SQL failed: {exc}{hint}") from exc
    finally:
        con.close()
