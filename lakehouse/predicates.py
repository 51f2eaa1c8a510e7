"""Delta predicates built from typed values, never from SQL text assembled by hand.

``replace_window``, deletes and MERGE conditions take a ``Predicate``. Values are rendered as SQL
literals here and only here: strings are single-quoted with embedded quotes doubled, timestamps
become the int64 UTC nanoseconds the tables store, floats must be finite, and column names must be
plain identifiers. A symbol such as ``O'NEIL CO:US`` therefore selects exactly its own rows.

    where(tf=["1m", "1h"], symbol_id="AAPL:US") & between("ts", lo, hi, closed="right")
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from core.errors import TableError

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

Scalar = str | int | float | bool | datetime | date
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Predicate:
    """A boolean condition on a Delta table's columns; combine with ``&`` and ``|``."""

    sql: str

    def __and__(self, other: Predicate) -> Predicate:
        return Predicate(f"({self.sql}) AND ({other.sql})")

    def __or__(self, other: Predicate) -> Predicate:
        return Predicate(f"({self.sql}) OR ({other.sql})")

    def __str__(self) -> str:
        return self.sql


def column(name: str, alias: str | None = None) -> str:
    """Return a checked column reference (``alias.name`` for MERGE conditions)."""
    for part in (name, alias) if alias else (name,):
        if not _IDENTIFIER.match(part):
            raise TableError(f"{part!r} is not a plain column name; predicates accept identifiers only")
    return f"{alias}.{name}" if alias else name


def literal(value: Scalar) -> str:
    """Render one typed value as a SQL literal, exactly as the tables store it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, float):
        if not math.isfinite(value):
            raise TableError(f"predicate value {value} is not finite")
        return repr(float(value))
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise TableError(f"predicate timestamp {value} has no time zone; pass an aware UTC datetime")
        return str(_epoch_ns(value))
    if isinstance(value, date):
        return "'" + value.isoformat() + "'"
    raise TableError(f"predicate value {value!r} of type {type(value).__name__} is not supported")


def _epoch_ns(value: datetime) -> int:
    """Exact int64 UTC nanoseconds of an aware datetime (no float rounding)."""
    return (value - _EPOCH) // timedelta(microseconds=1) * 1000


def eq(name: str, value: Scalar) -> Predicate:
    """``name = value``."""
    return Predicate(f"{column(name)} = {literal(value)}")


def isin(name: str, values: Iterable[Scalar]) -> Predicate:
    """``name IN (values)``; an empty set matches nothing."""
    items = sorted({literal(v) for v in values})
    if not items:
        return Predicate("false")
    if len(items) == 1:
        return Predicate(f"{column(name)} = {items[0]}")
    return Predicate(f"{column(name)} IN ({', '.join(items)})")


def compare(name: str, op: str, value: Scalar) -> Predicate:
    """``name op value`` for op in <, <=, >, >=, !=."""
    if op not in ("<", "<=", ">", ">=", "!="):
        raise TableError(f"unsupported comparison {op!r}")
    return Predicate(f"{column(name)} {op} {literal(value)}")


def between(name: str, lo: Scalar, hi: Scalar, closed: str = "both") -> Predicate:
    """``lo <= name <= hi``; ``closed`` is "both", "left", "right" or "neither"."""
    lo_op = ">=" if closed in ("both", "left") else ">"
    hi_op = "<=" if closed in ("both", "right") else "<"
    return compare(name, lo_op, lo) & compare(name, hi_op, hi)


def where(**conditions: Scalar | Iterable[Scalar] | None) -> Predicate:
    """AND of equality (scalar) or membership (list/tuple/set) conditions; None values are skipped."""
    parts = []
    for name, value in conditions.items():
        if value is None:
            continue
        if isinstance(value, (list, tuple, set, frozenset)):
            parts.append(isin(name, value))
        else:
            parts.append(eq(name, value))  # type: ignore[arg-type]
    if not parts:
        return Predicate("true")
    out = parts[0]
    for p in parts[1:]:
        out = out & p
    return out


def keys_match(keys: Iterable[str], target: str = "t", source: str = "s") -> Predicate:
    """The MERGE condition ``t.k = s.k AND ...`` over natural keys."""
    return Predicate(" AND ".join(f"{column(k, target)} = {column(k, source)}" for k in keys))
