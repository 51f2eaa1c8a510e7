"""What each ingest commit stored, read back from the Delta log.

Every chunk the ingest engine writes is one commit whose commitInfo carries the chunk's account
(``mps.batch_id``, ``mps.chunk``, rows read, written, duplicates, quarantined). The log therefore
tells what is stored and by which batch even when the run was killed before it wrote its
``bronze.ingest_log`` line; ``unlogged`` lists exactly those chunks.
"""

from __future__ import annotations

import polars as pl
import pyarrow.compute as pc

from lakehouse.schema import TableSpec
from lakehouse.storage import Lake
from lakehouse.tables import BRONZE_INGEST_LOG

_FIELDS = ("rows_read", "rows_written", "duplicates", "own", "quarantined", "batch_duplicates")
SCHEMA = {
    "version": pl.Int64,
    "batch_id": pl.String,
    "source": pl.String,
    "file": pl.String,
    "table": pl.String,
    "chunk": pl.Int64,
    **{f: pl.Int64 for f in _FIELDS},
}


def committed_chunks(lake: Lake, spec: TableSpec) -> pl.DataFrame:
    """One row per ingest commit of ``spec``: its version, batch, chunk and account."""
    dt = lake.delta(spec)
    rows = []
    for h in dt.history() if dt is not None else []:
        if "mps.batch_id" not in h:
            continue
        rows.append(
            {
                "version": h["version"],
                "batch_id": h["mps.batch_id"],
                "source": h.get("mps.source"),
                "file": h.get("mps.file"),
                "table": h.get("mps.table", spec.qualified),
                "chunk": int(h.get("mps.chunk", 0)),
                **{f: int(h.get(f"mps.{f}", 0)) for f in _FIELDS},
            }
        )
    return pl.DataFrame(rows, schema=SCHEMA).sort("version")


def unlogged(lake: Lake, spec: TableSpec) -> pl.DataFrame:
    """Committed chunks of ``spec`` whose batch has no ``bronze.ingest_log`` account (an interrupted run)."""
    chunks = committed_chunks(lake, spec)
    logged = lake.read(BRONZE_INGEST_LOG, columns=["batch_id"], filter=pc.field("table") == spec.qualified)
    return chunks.join(logged.unique(), on="batch_id", how="anti")
