"""Row-level checks derived from a table's declaration.

``split_valid`` returns the rows that pass and, separately, the rows that fail with a reason naming
the field. Checks come from ``Column`` flags (nullable, positive, non_negative, finite, upper), the
table's declared plausibility checks (``extra_checks``: bar OHLC consistency, duplicate prints),
per-instrument rules (price band, tick size), a horizon past the ingest clock, and the table's
ordering (``ordered_by`` within ``series_by``), so every writer applies the same rules. Ordering is
judged among the rows that pass every other check: one bad row never makes good rows after it look
out of order.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import polars as pl

from lakehouse.schema import TableSpec

REASON = "_reason"
DUPLICATE_PRINT_COLUMNS = ("symbol_id", "ts", "price", "size", "side", "exchange", "conditions")


@dataclass(frozen=True)
class InstrumentRule:
    """Per-instrument plausibility from the security master: a price band and, optionally, the tick."""

    price_min: float | None = None
    price_max: float | None = None
    tick_size: float | None = None  # set only where every print must sit on the tick grid


@dataclass(frozen=True)
class Plausibility:
    """Checks that need the ingest's context: its clock, a future horizon, instrument rules."""

    now_ns: int | None = None
    future_horizon_ns: int = 86_400 * 10**9  # rows stamped more than this past the ingest clock
    instruments: Mapping[str, InstrumentRule] = field(default_factory=dict)
    duplicate_prints: bool = False  # the delivery's prints are unique: an exact repeat is a duplicate


def _table_reasons(spec: TableSpec, df: pl.DataFrame, ctx: Plausibility) -> list[pl.Expr]:
    exprs: list[pl.Expr] = []
    cols = set(df.columns)
    if "ohlc" in spec.extra_checks and {"open", "high", "low", "close"} <= cols:
        hi, lo = pl.col("high"), pl.col("low")
        exprs.append(pl.when(hi < lo).then(pl.lit("high < low")))
        exprs.append(
            pl.when((hi < pl.max_horizontal("open", "close")) | (lo > pl.min_horizontal("open", "close"))).then(
                pl.lit("open/close outside [low, high]")
            )
        )
    if ctx.now_ns is not None and "ts" in cols:
        limit = ctx.now_ns + ctx.future_horizon_ns
        exprs.append(
            pl.when(pl.col("ts").dt.epoch("ns") > limit).then(
                pl.lit(f"ts is more than {ctx.future_horizon_ns / 3.6e12:g} h after the ingest clock")
            )
        )
    symbol = spec.symbol_column
    price = next((c for c in ("price", "close") if c in cols), None)
    if ctx.instruments and symbol in cols and price:
        exprs.append(_instrument_reason(price))
    if ctx.duplicate_prints and "duplicate_print" in spec.extra_checks and set(DUPLICATE_PRINT_COLUMNS) <= cols:
        first = pl.struct(DUPLICATE_PRINT_COLUMNS).is_first_distinct()
        exprs.append(pl.when(~first).then(pl.lit("duplicate print: repeats an earlier row in every field")))
    return exprs


def _instrument_reason(price: str) -> pl.Expr:
    """Price outside the instrument's band, or off its tick grid (rule columns joined by ``_with_rules``)."""
    p = pl.col(price)
    band = pl.col("_pmin").is_not_null() & (p < pl.col("_pmin")) | pl.col("_pmax").is_not_null() & (p > pl.col("_pmax"))
    steps = p / pl.col("_tick")
    off_tick = pl.col("_tick").is_not_null() & ((steps - steps.round(0)).abs() > 1e-6 * steps.abs().clip(1.0))
    return (
        pl.when(band)
        .then(
            pl.format(f"{price} {{}} outside the instrument's band [{{}}, {{}}]", p, pl.col("_pmin"), pl.col("_pmax"))
        )
        .when(off_tick)
        .then(pl.format(f"{price} {{}} is not a multiple of the tick {{}}", p, pl.col("_tick")))
        .alias("_instrument")
    )


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
        if c.upper is not None:
            exprs.append(pl.when(x > c.upper).then(pl.lit(f"{c.name} above the plausible {c.upper:g}")))
    return exprs


def split_valid(
    spec: TableSpec,
    df: pl.DataFrame,
    known_symbols: frozenset[str] | None = None,
    context: Plausibility | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Return (valid rows, rejected rows with a ``_reason`` column), preserving input order."""
    ctx = context or Plausibility()
    exprs = _column_reasons(spec, df) + _table_reasons(spec, df, ctx)
    symbol_column = spec.symbol_column
    if known_symbols is not None and symbol_column is not None and symbol_column in df.columns:
        exprs.append(
            pl.when(~pl.col(symbol_column).is_in(list(known_symbols))).then(
                pl.lit("unknown symbol ") + pl.col(symbol_column)
            )
        )
    ordered = bool(spec.ordered_by and spec.ordered_by in df.columns)
    if not exprs and not ordered:
        return df, df.clear().with_columns(pl.lit(None, pl.String).alias(REASON))
    checked = df
    if any(e.meta.output_name(raise_if_undetermined=False) == "_instrument" for e in exprs):
        checked = _with_rules(checked, spec, ctx)
    # First failing check wins; rows that fail nothing keep a null reason.
    checked = checked.with_columns(pl.coalesce(exprs).alias(REASON) if exprs else pl.lit(None, pl.String).alias(REASON))
    if ordered:  # judged among rows that passed everything else
        o = spec.ordered_by
        assert o is not None  # ordered implies a declared column
        kept = pl.when(pl.col(REASON).is_null()).then(pl.col(o))
        prev = kept.cum_max().shift(1).forward_fill()
        series = [s for s in spec.series_by if s in df.columns]
        if series:
            prev = prev.over(series)
        back = pl.when(pl.col(REASON).is_null() & (pl.col(o) < prev)).then(pl.lit(f"{o} goes backwards (out of order)"))
        checked = checked.with_columns(pl.coalesce(pl.col(REASON), back).alias(REASON))
    checked = checked.drop([c for c in ("_pmin", "_pmax", "_tick", "_sym") if c in checked.columns])
    bad = checked.filter(pl.col(REASON).is_not_null())
    good = checked.filter(pl.col(REASON).is_null()).drop(REASON)
    return good, bad


def _with_rules(df: pl.DataFrame, spec: TableSpec, ctx: Plausibility) -> pl.DataFrame:
    rules = pl.DataFrame(
        [
            {"_sym": k, "_pmin": r.price_min, "_pmax": r.price_max, "_tick": r.tick_size}
            for k, r in ctx.instruments.items()
        ],
        schema={"_sym": pl.String, "_pmin": pl.Float64, "_pmax": pl.Float64, "_tick": pl.Float64},
    )
    return df.join(rules, left_on=spec.symbol_column, right_on="_sym", how="left", maintain_order="left")


def _strictly_ordered(df: pl.DataFrame, keys: list[str]) -> bool:
    """Whether the rows' keys strictly increase, proving them distinct without hashing.

    Holds for most deliveries: one source and symbol per chunk (constant leading keys) and rows in
    (ts, seq) order. Constant keys are skipped; the rest must increase lexicographically row to row.
    """
    if df.height < 2 or any(df.get_column(k).null_count() for k in keys):
        return False
    # Compared in polars: Python datetimes would drop the nanoseconds.
    constant = df.select((pl.col(k).min() == pl.col(k).max()).alias(k) for k in keys).row(0)
    varying = [k for k, same in zip(keys, constant, strict=True) if not same]
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
