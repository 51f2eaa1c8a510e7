"""Read LEAN files into typed polars frames, separating the lines that cannot be parsed.

A LEAN file is a zip of header-less CSVs (option universes are plain CSVs with a ``#`` header). The
bytes are split into lines and fields inside polars (vectorised; no per-row Python), every field is
read as text and cast with ``strict=False``; a cast that fails, a missing required field or a wrong
field count rejects the line with a reason naming the field. Each parsed row keeps ``_row`` (1-based
line number in the file, counting across zip members) and ``_raw`` (the line as delivered).
"""

from __future__ import annotations

import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from core.errors import SourceError
from lakehouse.ingest import Rejected

REASON = "_reason"
BLANK = " \t\r"  # a line holding only these is blank: not a row


@dataclass(frozen=True)
class Field:
    """One CSV column: its name, how to cast it, whether it may be empty, and a price scale."""

    name: str
    kind: str = "float"  # float | str | datetime (LEAN "YYYYMMDD HH:MM") | date (YYYYMMDD)
    required: bool = True
    scale: float = 1.0


def read_bytes(path: Path) -> bytes:
    """Return the CSV bytes of a LEAN file: all zip members in order, or the plain file.

    A missing, unreadable, truncated or corrupt file raises ``SourceError`` naming it, as does a
    file without any data.
    """
    try:
        if path.suffix.lower() != ".zip":
            data = path.read_bytes()
        else:
            with zipfile.ZipFile(path) as zf:
                members = [i for i in zf.infolist() if not i.is_dir()]
                if not members:
                    raise SourceError(f"{path}: zip archive holds no files")
                data = b"\n".join(zf.read(i) for i in members)
    except FileNotFoundError:
        raise SourceError(f"{path}: file not found") from None
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, ValueError) as exc:
        raise SourceError(f"{path}: corrupt or truncated zip: {exc}") from exc
    except OSError as exc:
        raise SourceError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    if not data.strip(BLANK.encode() + b"\n"):
        raise SourceError(f"{path}: file is empty (no data lines)")
    return data


def split_lines(data: bytes, skip_comment: bool = False) -> pl.DataFrame:
    """One row per non-blank line: ``_row`` (1-based line number) and ``_raw`` (text without EOL).

    Blank lines (spaces, tabs, CR only) are not rows; a ``#`` line is skipped when ``skip_comment``.

    Bytes that are not UTF-8 are replaced (U+FFFD) so the line is kept and later rejected.
    """
    text = data.decode("utf-8", errors="replace")
    lines = (
        pl.DataFrame({"_raw": [text]})
        .select(pl.col("_raw").str.split("\n"))
        .explode("_raw")
        .with_row_index("_row", offset=1)
        .with_columns(pl.col("_row").cast(pl.Int64), pl.col("_raw").str.strip_chars_end("\r"))
    )
    keep = pl.col("_raw").str.strip_chars(BLANK) != ""
    if skip_comment:
        keep = keep & ~pl.col("_raw").str.starts_with("#")
    return lines.filter(keep)


def parse_fields(lines: pl.DataFrame, fields: tuple[Field, ...]) -> pl.DataFrame:
    """Cast each line's comma-separated fields; add ``_reason`` (null when the line parsed).

    The first failure wins: the field count, then each field in order (missing, not a number, not a
    date). Scaled fields are divided by their scale (LEAN equity prices are integers x 10000).
    """
    n = len(fields)
    parts = pl.col("_raw").str.split(",")
    df = lines.with_columns(parts.list.len().alias("_n"), parts.alias("_parts"))
    text = {f.name: pl.col("_parts").list.get(i, null_on_oob=True).str.strip_chars() for i, f in enumerate(fields)}
    df = df.with_columns([e.alias(f"_t_{k}") for k, e in text.items()])
    reasons = [pl.when(pl.col("_n") != n).then(pl.format(f"expected {n} fields, got {{}}", pl.col("_n")))]
    values = []
    for f in fields:
        t = pl.col(f"_t_{f.name}")
        empty = t.is_null() | (t == "")
        if f.kind == "float":
            v = t.cast(pl.Float64, strict=False)
            if f.scale != 1.0:  # rounded so 5309200 / 1e4 is exactly the decimal 530.92
                v = (v / f.scale).round(6)
            bad = ~empty & v.is_null()
            what = "not a number"
        elif f.kind == "datetime":
            v = t.str.strptime(pl.Datetime("ns"), "%Y%m%d %H:%M", strict=False)
            bad = ~empty & v.is_null()
            what = "not a date-time YYYYMMDD HH:MM"
        elif f.kind == "date":
            v = t.str.strptime(pl.Date, "%Y%m%d", strict=False)
            bad = ~empty & v.is_null()
            what = "not a date YYYYMMDD"
        else:
            v = pl.when(empty).then(None).otherwise(t)
            bad = pl.lit(False)
        if f.required:
            reasons.append(pl.when(empty).then(pl.lit(f"{f.name}: missing")))
        reasons.append(pl.when(bad).then(pl.format(f"{f.name}: {what} ({{}})", t.str.slice(0, 40))))
        values.append(v.alias(f.name))
    return (
        df.with_columns(values)
        .with_columns(pl.coalesce(reasons).alias(REASON))
        .drop("_n", "_parts", *[f"_t_{f.name}" for f in fields])
    )


def reject(df: pl.DataFrame, condition: pl.Expr, reason: str | pl.Expr) -> pl.DataFrame:
    """Set ``_reason`` on rows that pass so far but meet ``condition``."""
    why = pl.lit(reason) if isinstance(reason, str) else reason
    return df.with_columns(
        pl.when(pl.col(REASON).is_null() & condition).then(why).otherwise(pl.col(REASON)).alias(REASON)
    )


def split_rejected(df: pl.DataFrame) -> tuple[pl.DataFrame, list[Rejected]]:
    """Return (parsed rows without ``_reason``, the rejected lines with their raw text and reason)."""
    bad = df.filter(pl.col(REASON).is_not_null())
    good = df.filter(pl.col(REASON).is_null()).drop(REASON)
    rejected = [
        Rejected(row, raw, reason)
        for row, raw, reason in zip(bad.get_column("_row"), bad.get_column("_raw"), bad.get_column(REASON))
    ]
    return good, rejected
