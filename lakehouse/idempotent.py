"""Atomic idempotent writes: insert only the rows whose natural keys are not stored yet.

The key check and the write are one Delta transaction: the rows whose keys the check (on snapshot
v) did not find are appended in a commit whose read version is v and which carries a Delta
application transaction (``txn``) per partition it touches. Delta's conflict check fails a commit
when a commit after its read version carries the same application id, so a concurrent writer that
stored rows in the same partitions meanwhile makes this commit fail, and the whole attempt is
repeated on the new snapshot: two identical ingests running at once store every row once. Writers
of disjoint partitions never conflict, and a bulk load into new partitions skips the key scan
(file stats) and costs a plain append. (An insert-only MERGE gives the same guarantee, but its
DataFusion writer stores strings as ``string_view``, which pyarrow's dataset filters reject.)

Stored rows whose key matches a batch row are compared on their values: equal rows are duplicates
(or, when stored under the same ``batch_id``, this batch's own rows from an interrupted run);
different values are a correction, returned for the caller to quarantine, never dropped silently.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
from deltalake import CommitProperties, Transaction, write_deltalake
from deltalake.exceptions import CommitFailedError, DeltaError

from core.errors import TableError
from lakehouse.schema import TableSpec
from lakehouse.storage import writer_properties

MAX_ATTEMPTS = 30
CORRECTION = "correction of a stored row (same key, other values); stored by batch "
_NOT_VALUES = frozenset({"ingest_ts", "batch_id", "date"})


@dataclass(frozen=True)
class NewRows:
    """What an idempotent write did with a batch."""

    written: int
    duplicates: int  # key and values already stored by another batch
    own: int  # key and values already stored by this same batch (an earlier, interrupted run)
    corrections: pl.DataFrame  # batch rows whose key is stored with other values, with ``_reason``


def _locks(spec: TableSpec, batch: pl.DataFrame, version: int) -> list[Transaction]:
    """One application transaction per partition the batch touches (the whole table if unpartitioned)."""
    if not spec.partition_by:
        parts = [""]
    else:
        combos = batch.select(pl.col(p).cast(pl.String) for p in spec.partition_by).unique().sort(spec.partition_by)
        parts = ["/".join(f"{p}={v}" for p, v in zip(spec.partition_by, row, strict=True)) for row in combos.rows()]
    return [Transaction(f"mps.keys:{spec.qualified}:{part}", version) for part in parts]


def _stored_matches(lake, spec: TableSpec, batch: pl.DataFrame, columns: list[str]) -> pl.DataFrame:
    """Stored rows (``columns``) that may share a key with ``batch``, found like ``existing_keys``."""
    dt = lake.delta(spec)
    if dt is None or not lake._may_hold(dt, spec, batch):
        return pl.DataFrame(schema={c: batch.schema[c] for c in columns})
    expr = lake.key_filter(spec, batch)
    stored = dt.to_pyarrow_dataset().to_table(columns=columns, filter=expr)
    stored = stored.cast(pa.schema([spec.schema.field(c) for c in columns]))
    return pl.DataFrame(stored).cast({c: batch.schema[c] for c in columns})


def classify(spec: TableSpec, batch: pl.DataFrame, stored: pl.DataFrame, batch_id: str | None):
    """Split ``batch`` by the stored rows: (fresh rows, duplicates, own, corrections)."""
    keys = list(spec.keys)
    empty = batch.clear().with_columns(pl.lit(None, pl.String).alias("_reason"))
    if stored.height == 0:
        return batch, 0, 0, empty
    values = [c for c in stored.columns if c not in keys and c not in _NOT_VALUES]
    renamed = stored.unique(keys, keep="first").rename({c: f"{c}__stored" for c in stored.columns if c not in keys})
    joined = batch.join(
        renamed.with_columns(pl.lit(True).alias("__hit")), on=keys, how="left", nulls_equal=True, maintain_order="left"
    )
    hit = pl.col("__hit").fill_null(False)
    differs = (
        pl.any_horizontal([pl.col(c).ne_missing(pl.col(f"{c}__stored")) for c in values]) if values else pl.lit(False)
    )
    fresh = joined.filter(~hit).select(batch.columns)
    same = joined.filter(hit & ~differs)
    own = (
        same.filter(pl.col("batch_id__stored") == batch_id).height
        if batch_id and "batch_id__stored" in joined.columns
        else 0
    )
    by = pl.col("batch_id__stored") if "batch_id__stored" in joined.columns else pl.lit("?")
    corrections = (
        joined.filter(hit & differs)
        .with_columns((pl.lit(CORRECTION) + by).alias("_reason"))
        .select(*batch.columns, "_reason")
    )
    return fresh, same.height - own, own, corrections


def insert_new(
    lake,
    spec: TableSpec,
    batch: pl.DataFrame,
    *,
    batch_id: str | None = None,
    metadata: dict | None = None,
    compare_values: bool = True,
) -> NewRows:
    """Insert the rows of ``batch`` whose keys are not stored, atomically; retry on a concurrent commit.

    With ``compare_values`` stored rows with the same key are compared with the batch's (duplicate,
    own row or correction); without it every stored key counts as a duplicate.
    """
    if batch.height == 0:
        return NewRows(0, 0, 0, batch.clear().with_columns(pl.lit(None, pl.String).alias("_reason")))
    last: Exception | None = None
    for attempt in range(MAX_ATTEMPTS):
        try:
            return _attempt(lake, spec, batch, batch_id, metadata, compare_values)
        except (CommitFailedError, _CreateRace) as exc:  # a concurrent writer won: re-check on its snapshot
            last = exc
            time.sleep(random.uniform(0.01, 0.05) * (1 + attempt))
    raise TableError(f"{spec.qualified}: {MAX_ATTEMPTS} attempts lost to concurrent writers; last: {last}")


class _CreateRace(Exception):
    """Another writer created the table first."""


def _attempt(
    lake, spec: TableSpec, batch: pl.DataFrame, batch_id: str | None, metadata: dict | None, compare_values: bool
) -> NewRows:
    dt = lake.delta(spec)
    if dt is None:  # first write creates the table; a second creator fails and retries as an append
        table = lake.conform(spec, batch.select(spec.column_names))
        # No commit retries: a retry would turn a lost creation race into a blind append.
        props = _props(metadata or {}, table.num_rows, 0, 0, retries=0)
        try:
            write_deltalake(
                lake.uri(spec),
                table,
                mode="error",
                partition_by=list(spec.partition_by) or None,
                storage_options=lake._opts(),
                writer_properties=writer_properties(spec),
                commit_properties=props,
            )
        except (DeltaError, FileExistsError, OSError) as exc:
            if lake.delta(spec) is None:
                raise
            raise _CreateRace(str(exc)) from exc
        return NewRows(table.num_rows, 0, 0, batch.clear().with_columns(pl.lit(None, pl.String).alias("_reason")))
    columns = list(spec.keys)
    if compare_values:
        # a derived "date" partition is not a value to compare; a declared "date" key (symbol map) is
        columns = [c for c in spec.column_names if c in batch.columns and (c != "date" or c in spec.keys)]
    stored = _stored_matches(lake, spec, batch, columns)
    fresh, dups, own, corrections = classify(spec, batch, stored, batch_id)
    if fresh.height:
        table = lake.conform(spec, fresh.select(spec.column_names))
        write_deltalake(
            dt,
            table,
            mode="append",
            partition_by=list(spec.partition_by) or None,
            storage_options=lake._opts(),
            writer_properties=writer_properties(spec),
            commit_properties=_props(
                metadata or {}, table.num_rows, dups, own, locks=_locks(spec, fresh, dt.version() + 1)
            ),
        )
    inserted = fresh.height
    return NewRows(inserted, dups, own, corrections)


def _props(
    metadata: dict, written: int, duplicates: int, own: int, retries: int | None = None, locks=None
) -> CommitProperties:
    """Commit properties: the caller's metadata plus what this commit stores (its account), and the locks."""
    done = {"mps.rows_written": str(written), "mps.duplicates": str(duplicates), "mps.own": str(own)}
    return CommitProperties(custom_metadata={**metadata, **done}, max_commit_retries=retries, app_transactions=locks)


def key_expression(spec: TableSpec, batch: pl.DataFrame) -> pc.Expression | None:
    """A pyarrow filter narrowing stored rows to the partitions, symbols and ts range of ``batch``."""
    expr = None
    for p in spec.partition_by:
        part = pc.field(p).isin(batch.get_column(p).unique().to_list())
        expr = part if expr is None else expr & part
    for k in spec.keys:  # narrow by low-cardinality string keys (symbol_id): prunes files on stats
        if k in spec.partition_by or batch.schema[k] != pl.String:
            continue
        values = batch.get_column(k).unique()
        if values.len() <= 64 and values.null_count() == 0:
            part = pc.field(k).isin(values.to_list())
            expr = part if expr is None else expr & part
    if "ts" in spec.keys:
        ts = batch.get_column("ts").cast(pl.Datetime("ns", "UTC")).dt.epoch("ns")
        rng = (pc.field("ts") >= ts.min()) & (pc.field("ts") <= ts.max())
        expr = rng if expr is None else expr & rng
    return expr
