"""Declaration types for lakehouse tables: columns with their checks, keys and partitioning.

A ``TableSpec`` is the one place a table's shape is written down. Writers, readers, validation and
SQL views all derive from it (see ``lakehouse.storage`` and ``lakehouse.validate``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa

from core.timetypes import DAY_NS, MINUTE_NS, NS_PER_S, PL_TS, TS  # noqa: F401  (the one declaration)

LINEAGE = ("source", "ingest_ts", "batch_id")


@dataclass(frozen=True)
class Column:
    """One typed column with the row-level checks every writer applies."""

    name: str
    type: pa.DataType
    nullable: bool = False
    positive: bool = False  # > 0
    non_negative: bool = False  # >= 0
    finite: bool = True  # floats: NaN and +-inf are rejected
    upper: float | None = None  # values above are implausible (a price of 1e308)
    doc: str = ""

    @property
    def is_float(self) -> bool:
        return pa.types.is_floating(self.type)


def col(name: str, type_: pa.DataType, **kw) -> Column:
    return Column(name, type_, **kw)


@dataclass(frozen=True)
class TableSpec:
    """A Delta table: its layer, name, columns, natural keys and partition columns.

    ``keys`` identify a row; writes are idempotent on them. ``partition_by`` columns must be
    columns of the table (derived ones such as ``date`` are computed by the writer from ``ts``).
    ``ordered_by`` names the column that must not go backwards within one (key-prefix) series in a
    source file; rows that do are quarantined.
    """

    layer: str
    name: str
    columns: tuple[Column, ...]
    keys: tuple[str, ...]
    partition_by: tuple[str, ...] = ()
    ordered_by: str | None = None
    series_by: tuple[str, ...] = ()
    doc: str = ""
    lineage: bool = True
    # Declared plausibility checks (lakehouse.validate): "ohlc" (low <= open, close <= high),
    # "duplicate_print" (a row repeating another in every field, where the delivery's prints are unique).
    extra_checks: tuple[str, ...] = field(default=())

    @property
    def qualified(self) -> str:
        return f"{self.layer}.{self.name}"

    @property
    def schema(self) -> pa.Schema:
        return pa.schema([pa.field(c.name, c.type, nullable=c.nullable) for c in self.columns])

    @property
    def physical_schema(self) -> pa.Schema:
        """The schema on disk: timestamps as int64 UTC nanoseconds.

        Delta's timestamp type holds microseconds; storing int64 nanoseconds keeps full precision
        (order-level feeds carry several events per microsecond). Readers restore ``schema``.
        """
        return pa.schema(
            [
                pa.field(c.name, pa.int64() if pa.types.is_timestamp(c.type) else c.type, nullable=c.nullable)
                for c in self.columns
            ]
        )

    @property
    def timestamp_columns(self) -> list[str]:
        return [c.name for c in self.columns if pa.types.is_timestamp(c.type)]

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def symbol_column(self) -> str | None:
        """The column naming the instrument, checked against the security master on ingest."""
        return next((n for n in ("symbol_id", "underlying", "contract") if n in self.column_names), None)

    @property
    def payload_columns(self) -> list[Column]:
        """Columns an adapter supplies (everything but lineage and derived partition columns)."""
        skip = set(LINEAGE if self.lineage else ()) | ({"date"} if "date" in self.partition_by else set())
        return [c for c in self.columns if c.name not in skip]

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"{self.qualified} has no column {name!r}")

    def __post_init__(self) -> None:
        names = self.column_names
        missing = [k for k in (*self.keys, *self.partition_by) if k not in names]
        if missing:
            raise ValueError(f"{self.layer}.{self.name}: keys/partitions not in columns: {missing}")
        if len(set(names)) != len(names):
            raise ValueError(f"{self.layer}.{self.name}: duplicate column names")
