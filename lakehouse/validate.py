"""Row-level checks derived from a table's declaration.

``split_valid`` returns the rows that pass and, separately, the rows that fail with a reason naming
the field. Checks come from ``Column`` flags (nullable, positive, non_negative, finite) and from the
table's ordering (``ordered_by`` within ``series_by``), so every writer applies the same rules.
"""

from __future__ import annotations

import polars as pl

from lakehouse.schema import TableSpec

REASON = "_reason"


def _column_reasons(spec: TableSpec, df: pl.DataFrame) -> list[pl.Expr]:
    exprs: list[pl.Expr] = []
    for c in spec.payload_columns:
        if c.name not in df.columns:
            continue
        x = pl.col(c.name)
        if not c.nullable:
            exprs.append(pl.when(x.is_null()).then(pl.lit(f"{c.name} is missing")))
        if c.is_float and c.finite:
            exprs.append(pl.when(x.is_nan() | x.is_infinite()).then(pl.lit(f"{c.name} is not finite")))
        if c.positive:
            exprs.append(pl.when(x <= 0).then(pl.lit(f"{c.name} must be > 0")))
        if c.non_negative:
            exprs.append(pl.when(x < 0).then(pl.lit(f"{c.name} must be >= 0")))
    return exprs


def split_valid(
    spec: TableSpec, df: pl.DataFrame, known_symbols: frozenset[str] | None = None
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Return (valid rows, rejected rows with a ``_reason`` column), preserving input order."""
    exprs = _column_reasons(spec, df)
    symbol_column = spec.symbol_column
    if known_symbols is not None and symbol_column is not None and symbol_column in df.columns:
        exprs.append(
            pl.when(~pl.col(symbol_column).is_in(list(known_symbols))).then(
                pl.lit("unknown symbol ") + pl.col(symbol_column)
            )
        )
    if spec.ordered_by and spec.ordered_by in df.columns:
        prev = pl.col(spec.ordered_by).cum_max().shift(1)
        if spec.series_by:
            prev = prev.over([s for s in spec.series_by if s in df.columns] or pl.lit(0))
        exprs.append(
            pl.when(pl.col(spec.ordered_by) < prev).then(pl.lit(f"{spec.ordered_by} goes backwards (out of order)"))
        )
    if not exprs:
        return df, df.clear().with_columns(pl.lit(None, pl.String).alias(REASON))
    # First failing check wins; rows that fail nothing keep a null reason.
    checked = df.with_columns(pl.coalesce(exprs).alias(REASON))
    bad = checked.filter(pl.col(REASON).is_not_null())
    good = checked.filter(pl.col(REASON).is_null()).drop(REASON)
    return good, bad


def _strictly_ordered(df: pl.DataFrame, keys: list[str]) -> bool:
    """Whether the rows' keys strictly increase, proving them distinct without hashing.

    Holds for most deliveries: one source and symbol per chunk (constant leading keys) and rows in
    (ts, seq) order. Constant keys are skipped; the rest must increase lexicographically row to row.
    """
    if df.height < 2 or any(df.get_column(k).null_count() for k in keys):
        return False
    # Compared in polars: Python datetimes would drop the nanoseconds.
    constant = df.select((pl.col(k).min() == pl.col(k).max()).alias(k) for k in keys).row(0)
    varying = [k for k, same in zip(keys, constant) if not same]
    if not varying or len(varying) > 2:
        return False
    first, *rest = varying
    a, prev_a = pl.col(first), pl.col(first).shift(1)
    rising = a > prev_a
    if rest:
        b = pl.col(rest[0])
        rising = rising | ((a == prev_a) & (b > b.shift(1)))
    return bool(df.select(rising.slice(1).all()).item())


def split_duplicates(spec: TableSpec, df: pl.DataFrame) -> tuple[pl.DataFrame, int, pl.DataFrame]:
    """Drop repeated keys inside one batch.

    Exact repeats of a row are duplicates (counted, not stored). A repeated key whose values differ
    is a conflict: the first row is kept and the later ones are returned for quarantine.
    """
    keys = [k for k in spec.keys if k in df.columns]
    if not keys or df.height == 0:
        return df, 0, df.clear().with_columns(pl.lit(None, pl.String).alias(REASON))
    value_cols = [c for c in df.columns if not c.startswith("_")]
    # Fast paths prove the keys distinct: a time-ordered delivery in one linear pass, else distinct
    # key hashes (a hash collision falls through to the exact check).
    if _strictly_ordered(df, keys) or df.select(pl.struct(keys).hash().n_unique()).item() == df.height:
        return df, 0, df.clear().with_columns(pl.lit(None, pl.String).alias(REASON))
    first_key = pl.struct(keys).is_first_distinct()
    marked = df.with_columns(first_key.alias("_first"), pl.struct(value_cols).is_first_distinct().alias("_first_row"))
    kept = marked.filter(pl.col("_first")).drop("_first", "_first_row")
    repeats = marked.filter(~pl.col("_first"))
    exact = repeats.filter(~pl.col("_first_row")).height
    conflicts = (
        repeats.filter(pl.col("_first_row"))
        .drop("_first", "_first_row")
        .with_columns(pl.lit("duplicate key with different values: " + ", ".join(keys)).alias(REASON))
    )
    return kept, exact, conflicts
