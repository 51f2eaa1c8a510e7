"""Generic CSV/Parquet files with a declared column mapping -> bronze bars, trades or quotes.

The mapping (``configs/mappings/<name>.yaml`` or inline, see ``tabular_mapping``) names the target
table, the source column of each table column, constants (``tf``, ``kind``), the timestamp's
format, time zone and whether it labels the bar start or end, and where the symbol comes from.

Each file is one batch. A mapped column missing from the file fails the file with a message
naming the column and the file. A row whose numbers or timestamp cannot be parsed is quarantined
with its raw line and a reason naming the column; NaN and negative prices reach the engine's
declared checks and are quarantined there, also with the raw line.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
from polars._typing import TimeUnit
from pydantic import Field

from core.config import Strict
from core.errors import ConfigError, SourceError
from lakehouse.calendars import session_close
from lakehouse.ingest import Batch, Chunk, Clock, Rejected
from lakehouse.sources.lobster_parse import split_lines
from lakehouse.sources.tabular_files import batch_id_or_fallback, expand_paths
from lakehouse.sources.tabular_mapping import PRICE_COLUMNS, TARGETS, Mapping, load_mapping, validate_mapping

REASON = "_reason"


class Params(Strict):
    """A mapping (by name, path or inline) and the files it applies to."""

    mapping: str | dict = Field(description="mapping name in configs/mappings, a YAML path, or the mapping itself")
    paths: list[str] = Field(default_factory=list, description="files or globs; default: the mapping's files")
    root: str | None = Field(None, description="data root the mapping's file patterns are relative to")

    def resolved(self) -> Mapping:
        if isinstance(self.mapping, dict):
            return validate_mapping(self.mapping, "(inline)")
        return load_mapping(self.mapping)

    def files(self, mapping: Mapping) -> list[Path]:
        if self.paths:
            return expand_paths(self.paths)
        if not mapping.files:
            raise ConfigError("tabular: give paths, or a mapping with files and a root")
        if self.root is None:
            raise ConfigError(f"tabular: the mapping's files {mapping.files} need a root directory")
        return expand_paths([str(Path(self.root) / f) for f in mapping.files])


def batches(params: Params, clock: Clock) -> Iterator[Batch]:
    """Yield one batch per file; the batch id covers the file's bytes and the mapping."""
    mapping = params.resolved()
    spec = TARGETS[mapping.table]
    files = params.files(mapping)
    if not files:
        raise SourceError(f"tabular: no files match {params.paths or mapping.files}")
    extra = mapping.model_dump_json()
    for path in files:
        yield Batch(
            mapping.source,
            str(path),
            batch_id_or_fallback(mapping.source, path, extra),
            _chunks(mapping, path),
            table_hint=spec.qualified,
        )


def _chunks(mapping: Mapping, path: Path) -> Iterator[Chunk]:
    frame = read_frame(path, mapping)
    good, rejected = parse_frame(frame, mapping, path)
    yield Chunk(TARGETS[mapping.table], good, rejected, unique_prints=mapping.unique_prints)


# ---- reading ---------------------------------------------------------------------------------


def _is_parquet(path: Path) -> bool:
    return path.suffix.lower() in (".parquet", ".pq")


def read_frame(path: Path, mapping: Mapping) -> pl.DataFrame:
    """Read the file as text columns plus ``_row`` (line number) and ``_raw`` (the line as delivered)."""
    try:
        if _is_parquet(path):
            frame = pl.read_parquet(path)
            raw = pl.struct(pl.all().cast(pl.String)).struct.json_encode()
            return (
                frame.with_columns(raw.alias("_raw"))
                .with_row_index("_row", offset=1)
                .with_columns(pl.col("_row").cast(pl.Int64))
            )
        frame = pl.read_csv(
            path, infer_schema=False, separator=mapping.separator, null_values=mapping.null_values or None
        )
    except (OSError, pl.exceptions.PolarsError, UnicodeDecodeError) as exc:
        raise SourceError(f"{path}: cannot read as {'Parquet' if _is_parquet(path) else 'CSV'}: {exc}") from exc
    missing = [c for c in mapping.source_columns() if c not in frame.columns]
    if missing:
        raise SourceError(
            f"{path}: mapped column(s) {missing} not in the file (its columns: {frame.columns}); fix the mapping"
        )
    lines = _data_lines(path)
    if len(lines) == frame.height:
        frame = frame.with_columns(pl.Series("_raw", lines, pl.String))
    else:  # quoted line breaks: rebuild the row text from its fields
        frame = frame.with_columns(pl.concat_str(pl.all().fill_null(""), separator=mapping.separator).alias("_raw"))
    return frame.with_row_index("_row", offset=2).with_columns(pl.col("_row").cast(pl.Int64))


def _data_lines(path: Path) -> list[str]:
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    lines = split_lines(data.decode("utf-8-sig", errors="replace"))
    return [ln for ln in lines[1:] if ln.strip()]


# ---- parsing ---------------------------------------------------------------------------------


def _number(src: str, dtype: pl.DataType) -> pl.Expr:
    x = pl.col(src).cast(pl.String).str.strip_chars().cast(pl.Float64, strict=False)
    return x if dtype == pl.Float64 else x.cast(dtype, strict=False)


# What int64 nanoseconds can hold; a timestamp outside is quarantined, never wrapped to a wrong date.
NS_MIN = datetime(1677, 9, 21, 0, 12, 44, tzinfo=UTC)
NS_MAX = datetime(2262, 4, 11, 23, 47, 16, tzinfo=UTC)


def _parsed(mapping: Mapping, frame: pl.DataFrame, unit: TimeUnit) -> tuple[pl.Expr, bool]:
    """The timestamp column parsed at ``unit`` resolution, and whether the result is zone-aware.

    Text without a format is ISO-8601: naive values take the mapping's zone, values with ``Z`` or an
    offset are read as the instant they name (both may appear in one file).
    """
    t = mapping.timestamp
    col = pl.col(t.column)
    dtype = frame.schema[t.column]
    if t.unit:
        return pl.from_epoch(col.cast(pl.Int64, strict=False), time_unit=t.unit).dt.replace_time_zone("UTC"), True
    if isinstance(dtype, pl.Datetime):
        return col.cast(pl.Datetime(unit, dtype.time_zone)), dtype.time_zone is not None
    if isinstance(dtype, pl.Date):
        return col.cast(pl.Datetime(unit)), False
    text = col.str.strip_chars()
    if t.format:
        return text.str.strptime(pl.Datetime(unit), t.format, strict=False), "%z" in t.format.lower()
    naive = text.str.to_datetime(time_unit=unit, strict=False).dt.replace_time_zone(
        t.tz, ambiguous="earliest", non_existent="null"
    )
    aware = text.str.to_datetime(time_unit=unit, time_zone="UTC", strict=False).dt.convert_time_zone(t.tz)
    return pl.coalesce(naive, aware), True


def out_of_range(mapping: Mapping, frame: pl.DataFrame) -> pl.Expr:
    """Rows whose timestamp parses (at microseconds) but lies outside what int64 nanoseconds hold."""
    wide, aware = _parsed(mapping, frame, "us")
    utc = wide.dt.convert_time_zone("UTC") if aware else wide.dt.replace_time_zone("UTC")
    return utc.is_not_null() & ((utc < NS_MIN) | (utc > NS_MAX))


def timestamp(mapping: Mapping, frame: pl.DataFrame) -> pl.Expr:
    """The UTC ``ts`` the table wants: parsed, localised, truncated, moved from bar start to end."""
    t = mapping.timestamp
    parsed, tz_aware = _parsed(mapping, frame, "ns")
    parsed = pl.when(out_of_range(mapping, frame)).then(None).otherwise(parsed)
    local = (
        parsed.dt.convert_time_zone(t.tz)
        if tz_aware
        else parsed.dt.replace_time_zone(t.tz, ambiguous="earliest", non_existent="null")
    )
    if t.truncate:
        local = local.dt.truncate(t.truncate)
    if t.stamp == "start":
        assert t.bar_length is not None  # TimestampSpec requires it for stamp "start"
        local = local.dt.offset_by(t.bar_length)
    utc = local.dt.convert_time_zone("UTC").dt.cast_time_unit("ns")
    if t.stamp == "session_close":
        # A daily bar ends at its session's close (early closes included), the same rule as LEAN's
        # daily bars, so vendors' daily bars line up; a date that is not a session ends at midnight.
        days = frame.select(local.dt.date().alias("d")).get_column("d")
        assert t.calendar is not None  # TimestampSpec requires it for stamp "session_close"
        closes = session_close(t.calendar, days)
        return pl.coalesce(pl.lit(closes), local.dt.offset_by("1d").dt.convert_time_zone("UTC").dt.cast_time_unit("ns"))
    return utc


def _symbol(mapping: Mapping, path: Path) -> pl.Expr:
    if mapping.symbol_id:
        return pl.lit(mapping.symbol_id)
    prefix, suffix = mapping.symbol_template.split("{symbol}", 1)
    if mapping.symbol_column:
        base = pl.col(mapping.symbol_column).str.strip_chars()
        if mapping.symbol_map:
            return base.replace_strict(mapping.symbol_map, default=None, return_dtype=pl.String)
        return pl.concat_str(pl.lit(prefix), base, pl.lit(suffix))
    if mapping.symbol_from_path is None:
        raise SourceError(f"{path}: the mapping names no symbol_id, symbol_column or symbol_from_path")
    m = re.search(mapping.symbol_from_path, path.name)
    if m is None:
        raise SourceError(f"{path}: file name does not match symbol_from_path {mapping.symbol_from_path!r}")
    token = m["symbol"]
    if mapping.symbol_map:
        if token not in mapping.symbol_map:
            raise SourceError(f"{path}: symbol {token!r} from the file name is not in the mapping's symbol_map")
        return pl.lit(mapping.symbol_map[token])
    return pl.lit(f"{prefix}{token}{suffix}")


def parse_frame(frame: pl.DataFrame, mapping: Mapping, path: Path) -> tuple[pl.DataFrame, list[Rejected]]:
    """Type the mapped columns; return the parsed rows and the rows that did not parse."""
    spec = TARGETS[mapping.table]
    types = dict(zip(spec.column_names, pl.DataFrame(spec.schema.empty_table()).dtypes))
    values: list[pl.Expr] = [timestamp(mapping, frame).alias("ts"), _symbol(mapping, path).alias("symbol_id")]
    checks: list[pl.Expr] = []
    for target, src in mapping.columns.items():
        dtype = types[target]
        if target in mapping.value_maps:  # text codes -> the table's values (side: buy -> 1, sell -> -1)
            codes = pl.col(src).cast(pl.String).str.strip_chars()
            table = {str(k): v for k, v in mapping.value_maps[target].items()}
            mapped = codes.replace_strict(table, default=None, return_dtype=dtype)
            values.append(mapped.alias(target))
            checks.append(
                pl.when(codes.is_not_null() & mapped.is_null()).then(
                    pl.format(f"{target}: '{{}}' is not in the mapping's value_maps.{target} (column {src})", codes)
                )
            )
            continue
        if dtype == pl.String:
            values.append(pl.col(src).cast(pl.String).alias(target))
            continue
        v = _number(src, dtype)
        if target in PRICE_COLUMNS and mapping.price_scale != 1.0:
            v = v * mapping.price_scale
        values.append(v.alias(target))
        checks.append(
            pl.when(pl.col(src).is_not_null() & v.is_null()).then(
                pl.format(f"{target}: cannot parse '{{}}' as a number (column {src})", pl.col(src).cast(pl.String))
            )
        )
    for target, value in mapping.constants.items():
        values.append(pl.lit(value).cast(types[target]).alias(target))
    given = {"ts", "symbol_id", "seq", *mapping.columns, *mapping.constants}
    values += [pl.lit(None, types[c.name]).alias(c.name) for c in spec.payload_columns if c.name not in given]
    ts_src = pl.col(mapping.timestamp.column)
    t = mapping.timestamp
    how = f"with format {t.format} in {t.tz}" if t.format else f"as epoch {t.unit}" if t.unit else "as ISO-8601"
    how += "" if t.format or t.unit else f" (naive times in {t.tz})"
    checks.insert(
        0,
        pl.when(ts_src.is_null())
        .then(pl.lit(f"ts: column {t.column} is empty"))
        .when(out_of_range(mapping, frame))
        .then(
            pl.format(
                "ts: '{}' is outside what int64 nanoseconds hold (1677-09-21 .. 2262-04-11)", ts_src.cast(pl.String)
            )
        )
        .when(timestamp(mapping, frame).is_null())
        .then(pl.format(f"ts: cannot parse '{{}}' {how}", ts_src.cast(pl.String))),
    )
    if mapping.symbol_column and mapping.symbol_map:
        checks.append(
            pl.when(_symbol(mapping, path).is_null()).then(
                pl.format("symbol_id: '{}' is not in the mapping's symbol_map", pl.col(mapping.symbol_column))
            )
        )
    typed = frame.select(*values, pl.coalesce(checks).alias(REASON), "_row", "_raw")
    bad = typed.filter(pl.col(REASON).is_not_null())
    good = typed.filter(pl.col(REASON).is_null()).drop(REASON)
    if "seq" in spec.column_names:
        good = good.with_columns(pl.int_range(pl.len()).over("symbol_id", "ts").cast(pl.Int64).alias("seq"))
    rejected = [Rejected(r, raw, why) for r, raw, why in bad.select("_row", "_raw", REASON).iter_rows()]
    return good, rejected


def yahoo_adjustment_frame(path: str | Path) -> pl.DataFrame:
    """Return ``date, close, adj_close`` from a Yahoo daily CSV, for deriving dividends.

    Yahoo's ``Close`` is split-adjusted and ``Adj Close`` is split- and dividend-adjusted, so the
    ratio ``adj_close / close`` steps at each ex-dividend date. Unparseable rows are dropped here:
    this is a reference read for the corporate-actions engine, not an ingest.
    """
    frame = pl.read_csv(path, infer_schema=False, null_values=["null"])
    missing = [c for c in ("Date", "Close", "Adj Close") if c not in frame.columns]
    if missing:
        raise SourceError(f"{path}: not a Yahoo daily file, missing columns {missing}")
    return (
        frame.select(
            pl.col("Date").str.strptime(pl.Date, "%Y-%m-%d", strict=False).alias("date"),
            pl.col("Close").cast(pl.Float64, strict=False).alias("close"),
            pl.col("Adj Close").cast(pl.Float64, strict=False).alias("adj_close"),
        )
        .drop_nulls()
        .sort("date")
    )
