"""Decode a DBN file (zstd or plain) into frames of text columns, in bounded chunks.

``databento-dbn`` has no ndarray export, so records are transcoded by its Rust ``Transcoder`` to
CSV (fixed-point prices and integer ns timestamps kept as integers) and parsed by polars: both
steps are vectorised, and the file is streamed in blocks so memory stays bounded on large files.
zstd frames are decompressed with pyarrow's codec (the decoder reads only plain DBN here).
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import databento_dbn as dbn
import polars as pl
import pyarrow as pa

from core.errors import SourceError

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
BLOCK = 8 << 20  # decompressed bytes fed to the transcoder per step
UNDEF_PRICE = dbn.UNDEF_PRICE
U64_MAX = (1 << 64) - 1


@dataclass(frozen=True)
class Header:
    """What the file's metadata says about its records."""

    dataset: str
    schema: str | None
    version: int
    symbols: dict[int, str]  # instrument_id -> raw symbol, from the symbology mappings


def _open(path: Path):
    try:
        fh = pa.OSFile(str(path))
        head = fh.read(4)
        fh.seek(0)
    except (OSError, pa.ArrowException) as exc:
        raise SourceError(f"{path}: cannot read: {exc}") from exc
    return pa.CompressedInputStream(fh, "zstd") if head == ZSTD_MAGIC else fh


def _read(stream, n: int, path: Path) -> bytes:
    try:
        return stream.read(n)
    except (OSError, pa.ArrowException) as exc:
        raise SourceError(f"{path}: corrupt or truncated zstd data: {exc}") from exc


def _header(prefix: bytes, path: Path) -> tuple[Header, int]:
    if len(prefix) < 8 or prefix[:3] != b"DBN":
        raise SourceError(f"{path}: not a DBN file (no DBN header)")
    length = 8 + struct.unpack("<I", prefix[4:8])[0]
    if len(prefix) < length:
        raise SourceError(f"{path}: truncated DBN metadata")
    try:
        meta = cast(dbn.Metadata, dbn.DBNDecoder().write_and_decode(prefix[:length])[0])
    except dbn.DBNError as exc:
        raise SourceError(f"{path}: invalid DBN metadata: {exc}") from exc
    symbols: dict[int, str] = {}
    for raw_symbol, intervals in meta.mappings.items():
        for iv in intervals:
            if str(iv["symbol"]).isdigit():
                symbols[int(iv["symbol"])] = raw_symbol
    schema = str(meta.schema) if meta.schema is not None else None
    return Header(meta.dataset, schema, meta.version, symbols), length


def read_header(path: Path) -> Header:
    """Read only the metadata of a DBN file."""
    stream = _open(path)
    try:
        prefix = _read(stream, 1 << 16, path)
    finally:
        stream.close()
    return _header(prefix, path)[0]


def text_frames(path: Path, block: int = BLOCK) -> tuple[Header, Iterator[pl.DataFrame]]:
    """Return the header and a stream of all-text frames, one row per record, with ``_row``.

    A corrupt zstd stream or a truncated last record raises ``SourceError`` naming the file.
    """
    stream = _open(path)
    first = _read(stream, block, path)
    header, _ = _header(first, path)
    return header, _frames(path, stream, first, block)


def _frames(path: Path, stream, first: bytes, block: int) -> Iterator[pl.DataFrame]:
    out = io.BytesIO()
    # databento-dbn's stubs type its enum members as str.
    tc = dbn.Transcoder(out, dbn.Encoding.CSV, dbn.Compression.NONE, pretty_px=False, pretty_ts=False, map_symbols=True)  # type: ignore[arg-type]
    columns: list[str] | None = None
    pending = b""
    rows = 0
    data = first
    try:
        while data:
            try:
                tc.write(data)
                tc.flush()
            except dbn.DBNError as exc:
                raise SourceError(f"{path}: cannot decode DBN records: {exc}") from exc
            text = pending + out.getvalue()
            out.seek(0)
            out.truncate()
            cut = text.rfind(b"\n") + 1
            body, pending = text[:cut], text[cut:]
            if columns is None and body:
                nl = body.index(b"\n") + 1
                columns = body[:nl].decode().strip().split(",")
                body = body[nl:]
            if body:
                frame = _parse(body, columns, rows)
                rows += frame.height
                yield frame
            data = _read(stream, block, path)
        if rows == 0 and columns is not None:
            yield _parse(b"", columns, 0)
        leftover = len(tc.buffer())
        if leftover or pending:
            raise SourceError(
                f"{path}: truncated DBN data: {leftover or len(pending)} trailing bytes after {rows:,} complete records"
            )
    finally:
        stream.close()


def _parse(body: bytes, columns: list[str] | None, offset: int) -> pl.DataFrame:
    if not body:
        frame = pl.DataFrame(schema={c: pl.String for c in columns or []})
    else:
        frame = pl.read_csv(body, has_header=False, new_columns=columns, infer_schema=False, quote_char='"')
    raw = pl.concat_str([pl.col(c).fill_null("") for c in frame.columns], separator=",")
    return (
        frame.with_columns(raw.alias("_raw"))
        .with_row_index("_row", offset=offset + 1)
        .with_columns(pl.col("_row").cast(pl.Int64))
    )
