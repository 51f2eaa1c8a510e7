"""The lake: where each declared table lives, and idempotent reads and writes of Delta tables.

Local paths and ``s3://`` URIs go through the same code; only ``storage_options`` differ (profile).
Bronze writes append only rows whose natural keys are not already present (an anti-join against
the partitions the batch touches), so re-ingesting a file adds nothing. Silver and gold writers
use ``replace_window`` (overwrite the rows of a window) or ``upsert`` (MERGE on keys).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import unquote

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
from deltalake import ColumnProperties, DeltaTable, WriterProperties, write_deltalake
from deltalake.exceptions import DeltaError, TableNotFoundError

from core.errors import TableError
from lakehouse.predicates import Predicate, keys_match
from lakehouse.schema import TableSpec

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def writer_properties(spec: TableSpec) -> WriterProperties:
    """Parquet settings for ``spec``'s files: no dictionary pages for float columns.

    Measured values (prices, features) almost never repeat, so the writer's dictionary attempt is
    wasted work before its fallback to plain pages: turning it off halves the CPU of writing a
    float-heavy table and makes the files slightly smaller. Other columns keep the defaults.
    """
    floats = [f.name for f in spec.physical_schema if pa.types.is_floating(f.type)]
    return WriterProperties(column_properties={name: ColumnProperties(dictionary_enabled=False) for name in floats})


@dataclass(frozen=True)
class TableInfo:
    name: str
    rows: int
    version: int
    last_update_ms: int | None
    files: int


@dataclass
class Lake:
    """A lake root (local directory or ``s3://bucket/prefix``) plus its storage options."""

    root: str
    storage_options: dict[str, str] = field(default_factory=dict)
    # Opened tables, refreshed incrementally on each use: opening a Delta table re-reads its log,
    # which dominated small-batch ingest. Not pickled (a Lake sent to another process reopens).
    _open: dict[str, DeltaTable] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __getstate__(self) -> dict:
        return {"root": self.root, "storage_options": self.storage_options}

    def __setstate__(self, state: dict) -> None:
        self.root, self.storage_options, self._open = state["root"], state["storage_options"], {}

    @classmethod
    def from_profile(cls, profile, root: str | None = None) -> Lake:
        """The profile's lake, or another ``root`` reached with the profile's storage options (S3 keys)."""
        return cls(root or profile.lake.root, dict(profile.lake.storage_options))

    @property
    def is_local(self) -> bool:
        return "://" not in self.root or self.root.startswith("file://")

    def uri(self, spec: TableSpec) -> str:
        root = self.root.rstrip("/")
        if root.startswith("file://"):
            root = root[len("file://") :]
        return f"{root}/{spec.layer}/{spec.name}"

    def _opts(self) -> dict[str, str] | None:
        return self.storage_options or None

    # ---- reading -----------------------------------------------------------------------------
    def delta(self, spec: TableSpec) -> DeltaTable | None:
        """The table at its latest version, or None when it has never been written.

        A lake root that is a file, or a table whose log cannot be read, is a ``TableError`` naming it.
        """
        uri = self.uri(spec)
        dt = self._open.get(uri)
        try:
            if dt is not None:
                dt.update_incremental()  # picks up commits by other writers and processes
                return dt
            try:
                dt = DeltaTable(uri, storage_options=self._opts())
            except TableNotFoundError:
                self.check_root()
                return None
        except DeltaError as exc:
            self._open.pop(uri, None)
            raise TableError(
                f"{spec.qualified} at {uri} cannot be read (damaged Delta log?): {_first_line(exc)}"
            ) from exc
        self._open[uri] = dt
        return dt

    def check_root(self) -> None:
        """Fail with a clear error when a local lake root is a file."""
        if self.is_local:
            root = Path(self.root.removeprefix("file://"))
            if root.exists() and not root.is_dir():
                raise TableError(
                    f"lake root {root} is a file, not a directory; point --lake or the profile at a folder"
                )

    def _target(self, spec: TableSpec) -> DeltaTable | str:
        """What to write to: the open table when there is one (no log re-read), else its URI."""
        return self._open.get(self.uri(spec)) or self.uri(spec)

    def exists(self, spec: TableSpec) -> bool:
        return self.delta(spec) is not None

    def dataset(self, spec: TableSpec):
        """A pyarrow dataset over the current version (lazy; used by DuckDB and scans)."""
        dt = self.delta(spec)
        if dt is None:
            return None
        try:
            return dt.to_pyarrow_dataset()
        except (DeltaError, OSError) as exc:
            raise TableError(f"{spec.qualified} at {self.uri(spec)} cannot be read: {_first_line(exc)}") from exc

    def read_arrow(
        self, spec: TableSpec, columns: list[str] | None = None, filter: pc.Expression | None = None
    ) -> pa.Table:
        """Read with the declared types (timestamps restored from their int64 storage).

        ``filter`` is a pyarrow expression over the stored columns; compare timestamps with
        ``ts_value(...)`` (int64 nanoseconds).
        """
        ds = self.dataset(spec)
        if ds is None:
            empty = spec.schema.empty_table()
            return empty if columns is None else empty.select(columns)
        try:
            table = ds.to_table(columns=columns, filter=filter)
        except OSError as exc:  # a data file the log names is gone or unreadable
            raise TableError(f"{spec.qualified} at {self.uri(spec)} cannot be read: {_first_line(exc)}") from exc
        target = pa.schema([spec.schema.field(n) for n in table.column_names])
        return table.cast(target)

    def read(
        self, spec: TableSpec, columns: list[str] | None = None, filter: pc.Expression | None = None
    ) -> pl.DataFrame:
        """Read the current version as a polars frame (optionally projected and filtered)."""
        return pl.DataFrame(self.read_arrow(spec, columns, filter))

    def latest(self, spec: TableSpec, by: list[str], upto: int, column: str = "ts") -> pl.DataFrame:
        """The largest ``column`` (int64 ns) per ``by`` group among rows with ``column <= upto``.

        Settled from the Delta log where it can be: a file whose ``by`` columns are partitions or
        constant (stats min == max) and whose ``column`` ends at or before ``upto`` gives its max
        without being read. Only the other files (spanning ``upto``, several groups, no stats) are
        scanned, so a freshness check does not re-read all history every run.
        """
        dt = self.delta(spec)
        target = {c: pl.DataFrame(spec.schema.empty_table().select([c])).schema[c] for c in (*by, column)}
        if dt is None:
            return pl.DataFrame(schema=target)
        files = pl.DataFrame(pa.table(dt.get_add_actions(flatten=True)))
        value = {c: pl.col(f"partition.{c}") if c in spec.partition_by else pl.col(f"min.{c}") for c in by}
        settled = pl.lit(True)
        for c in by:
            if c not in spec.partition_by:
                settled = settled & pl.col(f"min.{c}").is_not_null() & (pl.col(f"min.{c}") == pl.col(f"max.{c}"))
        settled = settled & pl.col(f"max.{column}").is_not_null() & (pl.col(f"max.{column}").cast(pl.Int64) <= upto)
        files = files.with_columns(settled.fill_null(False).alias("_settled"))
        from_stats = files.filter("_settled").select(
            *[value[c].alias(c) for c in by], pl.col(f"max.{column}").cast(pl.Int64).alias(column)
        )
        frames = [from_stats]
        rest = {unquote(p) for p in files.filter(~pl.col("_settled")).get_column("path")}
        if rest:
            full = dt.to_pyarrow_dataset()
            fragments = [f for f in full.get_fragments() if any(unquote(f.path).endswith(p) for p in rest)]
            subset = pads.FileSystemDataset(fragments, full.schema, full.format, full.filesystem)
            read = pl.DataFrame(subset.to_table(columns=[*by, column], filter=pc.field(column) <= upto))
            frames.append(read)
        stacked = pl.concat(
            [f.cast({c: pl.String for c in by if c in spec.partition_by}) for f in frames], how="vertical_relaxed"
        )
        out = stacked.group_by(by).agg(pl.col(column).max())
        return out.cast({c: t for c, t in target.items() if c != column}).with_columns(
            pl.col(column).cast(pl.Int64).cast(target[column])
        )

    def info(self, spec: TableSpec) -> TableInfo | None:
        dt = self.delta(spec)
        if dt is None:
            return None
        history = dt.history(1)
        last = history[0].get("timestamp") if history else None
        adds = pa.table(dt.get_add_actions(flatten=True))
        rows = pc.sum(adds.column("num_records")).as_py() if adds.num_rows else 0
        return TableInfo(spec.qualified, int(rows or 0), dt.version(), last, adds.num_rows)

    # ---- writing -----------------------------------------------------------------------------
    def conform(self, spec: TableSpec, data: pa.Table | pl.DataFrame) -> pa.Table:
        """Cast ``data`` to the declared schema (column order and types); error on missing columns."""
        table = data.to_arrow() if isinstance(data, pl.DataFrame) else data
        missing = [c for c in spec.column_names if c not in table.column_names]
        if missing:
            raise TableError(f"{spec.qualified}: data lacks columns {missing}")
        table = table.select(spec.column_names)
        try:
            return table.cast(spec.schema).cast(spec.physical_schema)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise TableError(f"{spec.qualified}: cannot cast to the declared schema: {exc}") from exc

    def append(self, spec: TableSpec, data: pa.Table | pl.DataFrame) -> int:
        """Append rows as they are (callers dedupe first); return the number written."""
        table = self.conform(spec, data)
        if table.num_rows == 0:
            return 0
        write_deltalake(
            self._target(spec),
            table,
            mode="append",
            partition_by=list(spec.partition_by) or None,
            storage_options=self._opts(),
            writer_properties=writer_properties(spec),
        )
        return table.num_rows

    def key_filter(self, spec: TableSpec, batch: pl.DataFrame) -> pc.Expression | None:
        """A filter narrowing stored rows to the partitions, symbols and ts range ``batch`` touches."""
        from lakehouse.idempotent import key_expression

        return key_expression(spec, batch)

    def existing_keys(self, spec: TableSpec, batch: pl.DataFrame) -> pl.DataFrame:
        """Keys already in the table for the partitions (and ts range) ``batch`` touches."""
        dt = self.delta(spec)
        empty = pl.DataFrame(schema={k: batch.schema[k] for k in spec.keys})
        if dt is None or batch.height == 0 or not self._may_hold(dt, spec, batch):
            return empty
        keys = dt.to_pyarrow_dataset().to_table(columns=list(spec.keys), filter=self.key_filter(spec, batch))
        keys = keys.cast(pa.schema([spec.schema.field(k) for k in spec.keys]))
        return pl.DataFrame(keys).cast({k: batch.schema[k] for k in spec.keys})

    @staticmethod
    def _may_hold(dt: DeltaTable, spec: TableSpec, batch: pl.DataFrame) -> bool:
        """Whether any stored file could hold one of the batch's keys, from the log alone.

        A file can only if it is in a partition the batch touches and its ts range (file stats)
        overlaps the batch's. Bulk loads and later chunks of one delivery usually overlap nothing,
        and then the key scan is skipped. Files without stats count as overlapping.
        """
        files = pl.DataFrame(pa.table(dt.get_add_actions(flatten=True)))
        if files.height == 0:
            return False
        if spec.partition_by:
            touched = batch.select(
                pl.col(c).cast(pl.String).alias(f"partition.{c}") for c in spec.partition_by
            ).unique()
            files = files.join(touched, on=touched.columns, how="semi")
        for key in spec.keys:  # the batch's key range must overlap the file's (ts, symbol_id, ...)
            if key in spec.partition_by or f"min.{key}" not in files.columns or files.height == 0:
                continue
            values = batch.get_column(key)
            if values.dtype == pl.Datetime("ns", "UTC") or isinstance(values.dtype, pl.Datetime):
                values = values.cast(pl.Datetime("ns", "UTC")).dt.epoch("ns")
            elif values.dtype != pl.String and not values.dtype.is_integer():
                continue
            lo, hi = pl.col(f"min.{key}").cast(values.dtype), pl.col(f"max.{key}").cast(values.dtype)
            files = files.filter(lo.is_null() | hi.is_null() | ((lo <= values.max()) & (hi >= values.min())))
        return files.height > 0

    def append_new(self, spec: TableSpec, batch: pl.DataFrame, metadata: dict | None = None) -> tuple[int, int]:
        """Append the rows whose keys are not yet stored, atomically; return (written, duplicates skipped).

        The key check and the append are one transaction (see ``lakehouse.idempotent``): writers
        racing on the same rows store each once. ``metadata`` goes into the commit's commitInfo.
        """
        from lakehouse.idempotent import insert_new

        done = insert_new(self, spec, batch, metadata=metadata, compare_values=False)
        return done.written, batch.height - done.written

    def replace_window(self, spec: TableSpec, data: pa.Table | pl.DataFrame, predicate: Predicate) -> int:
        """Atomically replace the rows matching ``predicate`` (see ``lakehouse.predicates``) with ``data``.

        Re-running a window therefore leaves the table's content unchanged.
        """
        table = self.conform(spec, data)
        if self.delta(spec) is None:
            return self.append(spec, table)
        write_deltalake(
            self._target(spec),
            table,
            mode="overwrite",
            predicate=predicate.sql,
            partition_by=list(spec.partition_by) or None,
            storage_options=self._opts(),
            writer_properties=writer_properties(spec),
        )
        return table.num_rows

    def upsert(self, spec: TableSpec, data: pa.Table | pl.DataFrame) -> dict:
        """MERGE ``data`` on the natural keys: update matches, insert the rest."""
        table = self.conform(spec, data)
        dt = self.delta(spec)
        if dt is None:
            self.append(spec, table)
            return {"num_target_rows_inserted": table.num_rows}
        on = keys_match(spec.keys).sql
        return (
            dt.merge(table, predicate=on, source_alias="s", target_alias="t")
            .when_matched_update_all()
            .when_not_matched_insert_all()
            .execute()
        )

    def tables(self, specs: Iterable[TableSpec]) -> list[TableInfo]:
        return [i for s in specs if (i := self.info(s)) is not None]


def ts_value(value) -> int:
    """A timestamp (datetime, polars/pyarrow scalar or int ns) as stored: int64 UTC nanoseconds."""
    if isinstance(value, int):
        return value
    if type(value) is datetime and value.tzinfo is not None:  # the common case, without building a Series
        return (value - EPOCH) // timedelta(microseconds=1) * 1000
    return pl.Series([value]).cast(pl.Datetime("ns", "UTC")).dt.epoch("ns").item()


def _first_line(exc: Exception) -> str:
    """The message of a delta-rs error without its Rust backtrace."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def local_lake(path: str | Path) -> Lake:
    return Lake(str(Path(path).resolve()))
