"""Databento DBN files (one schema per file, zstd or plain) -> bronze tables.

    mbo              -> book_events (+ trades for T records)
    mbp-10           -> book_events with level and the 10-level book (+ trades for T)
    mbp-1, tbbo, cmbp-1 -> quotes (top of book after / before the event) (+ trades for T)
    bbo-1s/1m, cbbo-1s/1m -> quotes stamped at the sample time (ts_recv)
    trades           -> trades
    ohlcv-1s/1m/1h/1d-> bars (kind trade), re-stamped from bar open to bar END
    definition       -> futures_contracts (futures only; other instrument classes are quarantined)

Row ``source``: trades, bars and contracts are "databento" (the same print decoded from trades,
tbbo or mbo is the same row, so re-delivery through another schema dedupes); quotes and book events
are "databento.<schema>" because those feeds differ in content at the same (symbol, ts, seq): an
mbp-10 event is not an mbo event, and a 1-second BBO sample is not a 1-minute one.

Symbols come from the file's symbology mappings (instrument_id -> raw symbol, as the decoder maps
them); ``symbol_id`` is ``<raw symbol>:<venue>`` with the venue from the dataset (GLBX.MDP3 -> CME,
so "ESH4:CME"). Timestamps stay UTC nanoseconds. A corrupt or truncated file fails alone, named.
Schemas not listed (statistics, status, imbalance, ...) fail with a message
listing the supported ones rather than being skipped silently.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import polars as pl
from pydantic import Field

from core.config import Strict
from core.errors import SourceError
from lakehouse.ingest import Batch, Chunk, Clock, Rejected
from lakehouse.sources import databento_schemas as sch
from lakehouse.sources.databento_decode import BLOCK, Header, text_frames
from lakehouse.sources.tabular_files import batch_id_or_fallback, expand_paths
from lakehouse.tables import BRONZE_BARS, BRONZE_BOOK_EVENTS, BRONZE_FUTURES_CONTRACTS, BRONZE_QUOTES, BRONZE_TRADES

SOURCE = "databento"
VENUES = {
    "GLBX.MDP3": "CME",
    "XNAS.ITCH": "US",
    "XNYS.PILLAR": "US",
    "DBEQ.BASIC": "US",
    "EQUS.MINI": "US",
    "XBOS.ITCH": "US",
    "XPSX.ITCH": "US",
    "ARCX.PILLAR": "US",
    "IFEU.IMPACT": "ICE",
    "NDEX.IMPACT": "ICE",
}
TOP = ("mbp-1", "tbbo", "cmbp-1")
SAMPLED = ("bbo-1s", "bbo-1m", "cbbo-1s", "cbbo-1m")
SUPPORTED = ("mbo", "mbp-10", *TOP, *SAMPLED, "trades", *sch.BAR_TF, "definition")


class Params(Strict):
    """Which DBN files to read and how to name their instruments."""

    paths: list[str] = Field(min_length=1, description="DBN files (.dbn or .dbn.zst), directories or globs")
    venue: str | None = Field(None, description="symbol_id suffix; default from the dataset (GLBX.MDP3 -> CME)")
    block_bytes: int = Field(BLOCK, gt=0, description="decompressed bytes decoded per chunk")


def batches(params: Params, clock: Clock) -> Iterator[Batch]:
    """Yield one batch per DBN file (id = hash of the file's bytes)."""
    for path in expand_paths(params.paths, "*.dbn*"):
        yield Batch(SOURCE, str(path), batch_id_or_fallback(SOURCE, path), _chunks(params, path))


class SeqCounter:
    """Number rows sharing (symbol_id, ts) in delivery order, carrying the count across chunks."""

    def __init__(self) -> None:
        self.carry = pl.DataFrame(schema={"symbol_id": pl.String, "ts": pl.Datetime("ns", "UTC"), "_next": pl.Int64})

    def assign(self, df: pl.DataFrame) -> pl.DataFrame:
        df = df.join(self.carry, on=["symbol_id", "ts"], how="left", maintain_order="left", nulls_equal=True)
        df = df.with_columns(
            (pl.int_range(pl.len()).over("symbol_id", "ts") + pl.col("_next").fill_null(0)).cast(pl.Int64).alias("seq")
        ).drop("_next")
        if df.height:
            self.carry = df.group_by("symbol_id").agg(pl.col("ts").last(), (pl.col("seq").last() + 1).alias("_next"))
        return df


def _chunks(params: Params, path: Path) -> Iterator[Chunk]:
    header, frames = text_frames(path, params.block_bytes)
    if header.schema not in SUPPORTED:
        raise SourceError(
            f"{path}: DBN schema {header.schema or 'mixed'} is not ingested; supported: {', '.join(SUPPORTED)}"
        )
    venue = params.venue or VENUES.get(header.dataset, header.dataset)
    counters: dict[str, SeqCounter] = {}

    feed = f"{SOURCE}.{header.schema}"

    def chunk(spec, df: pl.DataFrame, rejected: list[Rejected] | None = None) -> Chunk:
        if spec.qualified in (BRONZE_QUOTES.qualified, BRONZE_BOOK_EVENTS.qualified):
            df = df.with_columns(pl.lit(feed).alias("source"))
        if "seq" in spec.column_names:
            df = counters.setdefault(spec.qualified, SeqCounter()).assign(df)
        return Chunk(spec, df, rejected or [])

    for frame in frames:
        yield from _convert(header, frame, venue, chunk)


def _convert(header: Header, frame: pl.DataFrame, venue: str, chunk) -> Iterator[Chunk]:
    schema, exchange = header.schema, header.dataset
    if schema in ("mbo", "mbp-10"):
        yield chunk(BRONZE_BOOK_EVENTS, sch.book_events(frame, venue))
    if schema in TOP:
        yield chunk(BRONZE_QUOTES, sch.quotes(frame, venue, exchange))
    if schema in SAMPLED:
        yield chunk(BRONZE_QUOTES, sch.quotes(frame, venue, exchange, stamp="ts_recv"))
    if schema in ("mbo", "mbp-10", *TOP, "trades"):
        yield chunk(BRONZE_TRADES, sch.trades(frame, venue, exchange))
    if schema in sch.BAR_TF:
        yield chunk(BRONZE_BARS, sch.bars(frame, venue, schema))
    if schema == "definition":
        rows, others = sch.futures_contracts(frame, venue)
        rejected = [
            Rejected(r, raw, f"instrument class {cls!r} of {sym} is not a future; only futures definitions are stored")
            for r, raw, cls, sym in others.select("_row", "_raw", "instrument_class", "raw_symbol").iter_rows()
        ]
        yield chunk(BRONZE_FUTURES_CONTRACTS, rows, rejected)
