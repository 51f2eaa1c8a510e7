"""The ingest engine: adapters parse, this module validates, dedupes, writes and accounts.

An adapter turns one delivery (a file, a query window, a simulated day) into a ``Batch``: a source
name, a deterministic ``batch_id`` and a stream of ``Chunk`` objects, one per target table and slice.
A chunk carries the parsed rows (payload columns, plus optional ``_row`` and ``_raw`` with the
delivery's row number and raw text) and the rows the adapter could not parse at all.

For every chunk the engine applies the table's declared checks, drops repeated keys, appends only
rows not yet stored, quarantines the rest with a reason, and keeps the account
``rows_read = rows_written + duplicates + quarantined`` per batch and table, written to
``bronze.ingest_log``. A batch whose file cannot be opened fails alone, with a message naming it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
import pyarrow.compute as pc

from core.errors import MpsError, SourceError
from lakehouse.idempotent import insert_new
from lakehouse.schema import TableSpec
from lakehouse.storage import Lake
from lakehouse.tables import BRONZE_INGEST_LOG, BRONZE_QUARANTINE
from lakehouse.validate import REASON, InstrumentRule, Plausibility, split_duplicates, split_valid

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class Rejected:
    """A delivered row the adapter could not parse, kept with its raw text."""

    row: int
    raw: str
    reason: str


@dataclass
class Chunk:
    table: TableSpec
    data: pl.DataFrame
    rejected: list[Rejected] = field(default_factory=list)
    # The delivery's prints are unique (a trade id, or timestamps fine enough that two real prints
    # never share every field): a row repeating another in every field is a duplicate print.
    unique_prints: bool = False

    @property
    def rows_read(self) -> int:
        return self.data.height + len(self.rejected)


@dataclass
class Batch:
    """One delivery: where it came from, its id, and a lazily parsed stream of chunks."""

    source: str
    file: str
    batch_id: str
    chunks: Iterable[Chunk]
    table_hint: str = "bronze.*"


@dataclass
class Account:
    batch_id: str
    source: str
    table: str
    file: str
    rows_read: int = 0
    rows_written: int = 0
    duplicates: int = 0
    quarantined: int = 0

    @property
    def balanced(self) -> bool:
        return self.rows_read == self.rows_written + self.duplicates + self.quarantined

    def line(self) -> str:
        return (
            f"{self.file} -> {self.table}: read {self.rows_read:,} = written {self.rows_written:,}"
            f" + duplicates {self.duplicates:,} + quarantined {self.quarantined:,}"
        )


@dataclass
class FileFailure:
    source: str
    file: str
    message: str


@dataclass
class IngestReport:
    accounts: list[Account] = field(default_factory=list)
    failures: list[FileFailure] = field(default_factory=list)

    def total(self, attr: str) -> int:
        return sum(getattr(a, attr) for a in self.accounts)

    @property
    def balanced(self) -> bool:
        return all(a.balanced for a in self.accounts)

    def lines(self) -> list[str]:
        out = [a.line() for a in self.accounts]
        out += [f"FAILED {f.file}: {f.message}" for f in self.failures]
        return out

    def merge(self, other: IngestReport) -> IngestReport:
        self.accounts += other.accounts
        self.failures += other.failures
        return self


def file_batch_id(source: str, path: Path, extra: str = "") -> str:
    """Deterministic batch id: the same file content from the same source gives the same id."""
    h = hashlib.sha256(f"{source}\0{path.name}\0{extra}\0".encode())
    try:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    except OSError as exc:
        raise SourceError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    return h.hexdigest()[:20]


def text_batch_id(*parts: object) -> str:
    """Deterministic batch id from descriptive parts (a query window, a simulator seed)."""
    return hashlib.sha256("\0".join(map(str, parts)).encode()).hexdigest()[:20]


def _raw_column(df: pl.DataFrame) -> pl.Expr:
    if "_raw" in df.columns:
        return pl.col("_raw").cast(pl.String)
    values = [c for c in df.columns if not c.startswith("_")]
    return pl.struct(values).struct.json_encode()


MAX_CHUNKS_IN_FLIGHT = 2  # prepared chunks waiting for the writer (bounds memory)


@dataclass
class _Prepared:
    spec: TableSpec
    rows: pl.DataFrame
    quarantine: pl.DataFrame
    exact_dups: int
    rows_read: int
    ingest_ts: datetime
    number: int = 0  # the chunk's ordinal for its table within the batch (same on every run)
    recovering: bool = True  # the batch has no account for this table yet


class Ingestor:
    """Write batches into the lake with validation, dedupe, quarantine and accounting."""

    def __init__(
        self,
        lake: Lake,
        clock: Clock,
        known_symbols: frozenset[str] | None = None,
        *,
        instruments: Mapping[str, InstrumentRule] | None = None,
        future_horizon: timedelta = timedelta(days=1),
    ):
        self.lake = lake
        self.clock = clock
        self.known_symbols = known_symbols
        self.instruments = dict(instruments or {})
        self.future_horizon = future_horizon

    def run(self, batches: Iterable[Batch], progress: Callable[[Account], None] | None = None) -> IngestReport:
        report = IngestReport()
        for batch in batches:
            try:
                accounts = self.ingest_batch(batch)
            except MpsError as exc:
                report.failures.append(FileFailure(batch.source, batch.file, str(exc)))
                self._quarantine_failure(batch, str(exc))
                continue
            report.accounts += accounts
            for a in accounts:
                if progress:
                    progress(a)
        return report

    def ingest_batch(self, batch: Batch) -> list[Account]:
        """Validate chunk N+1 while chunk N is written.

        Writes (key check, anti-join, append) run on one writer thread strictly in chunk order, so
        dedupe sees every earlier chunk; validation runs meanwhile on this thread. Both are native
        code that releases the GIL, so on two cores the write and the next validation overlap.
        """
        ingest_ts = self.clock()
        logged = self._logged_tables(batch.batch_id)
        accounts: dict[str, Account] = {}
        chunk_no: dict[str, int] = {}
        offset = 0
        in_flight: list[tuple[Account, int, Future]] = []
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="mps-writer") as writer:
            try:
                for chunk in batch.chunks:
                    spec = chunk.table
                    acc = accounts.setdefault(
                        spec.qualified, Account(batch.batch_id, batch.source, spec.qualified, batch.file)
                    )
                    prepared = self._prepare_chunk(batch, chunk, ingest_ts, offset)
                    prepared.number = chunk_no[spec.qualified] = chunk_no.get(spec.qualified, -1) + 1
                    prepared.recovering = spec.qualified not in logged
                    offset += chunk.rows_read
                    acc.rows_read += chunk.rows_read
                    in_flight.append((acc, prepared.exact_dups, writer.submit(self._write_chunk, batch, prepared)))
                    if len(in_flight) > MAX_CHUNKS_IN_FLIGHT:  # bound memory: wait for the oldest write
                        in_flight[-1 - MAX_CHUNKS_IN_FLIGHT][2].result()
            finally:
                results = [(acc, dups, fut.result()) for acc, dups, fut in in_flight]
        for acc, exact_dups, (written, dups, quarantined) in results:
            acc.rows_written += written
            acc.duplicates += dups + exact_dups
            acc.quarantined += quarantined
        log = pl.DataFrame(
            [{**a.__dict__, "ingest_ts": ingest_ts} for a in accounts.values()],
            schema_overrides={"ingest_ts": pl.Datetime("ns", "UTC")},
        )
        if log.height:
            self.lake.append_new(BRONZE_INGEST_LOG, log.select(BRONZE_INGEST_LOG.column_names))
        return list(accounts.values())

    def _prepare_chunk(self, batch: Batch, chunk: Chunk, ingest_ts: datetime, offset: int) -> _Prepared:
        """Pure part: declared checks, in-batch dedupe, quarantine rows, lineage columns."""
        spec, df = chunk.table, chunk.data
        if "_row" not in df.columns:
            df = df.with_row_index("_row", offset=offset + 1).with_columns(pl.col("_row").cast(pl.Int64))
        context = Plausibility(
            now_ns=int(ingest_ts.timestamp() * 1e6) * 1000 if ingest_ts is not None else None,
            future_horizon_ns=int(self.future_horizon.total_seconds() * 1e9),
            instruments=self.instruments,
            duplicate_prints=chunk.unique_prints,
        )
        good, bad = split_valid(spec, df, self.known_symbols, context)
        good, exact_dups, conflicts = split_duplicates(spec, good)
        rejected = pl.concat([bad, conflicts], how="diagonal_relaxed") if conflicts.height else bad
        quarantine = self._quarantine_frame(batch, spec, rejected, chunk.rejected, ingest_ts)
        rows = self._with_lineage(batch, spec, good, ingest_ts)
        return _Prepared(spec, rows, quarantine, exact_dups, chunk.rows_read, ingest_ts)

    def _logged_tables(self, batch_id: str) -> set[str]:
        """Tables this batch already has an account for (a finished earlier run)."""
        if not self.lake.exists(BRONZE_INGEST_LOG):
            return set()
        log = self.lake.read(BRONZE_INGEST_LOG, columns=["table"], filter=pc.field("batch_id") == batch_id)
        return set(log.get_column("table").to_list())

    def _write_chunk(self, batch: Batch, prepared: _Prepared) -> tuple[int, int, int]:
        """Writer-thread part: store new keys and the quarantine; return (written, duplicates, quarantined).

        The chunk's account rides in the data commit's metadata, so a run killed after the commit
        still says what it stored. Rows this batch itself stored in an interrupted run (same key,
        values and batch_id) count as written when the batch has no account yet; corrections (same
        key, other values) are quarantined with the batch that stored the first version.
        """
        self.lake.append_new(BRONZE_QUARANTINE, prepared.quarantine)
        meta = {
            "mps.batch_id": batch.batch_id,
            "mps.source": batch.source,
            "mps.file": batch.file,
            "mps.table": prepared.spec.qualified,
            "mps.chunk": str(prepared.number),
            "mps.rows_read": str(prepared.rows_read),
            "mps.quarantined": str(prepared.quarantine.height),
            "mps.batch_duplicates": str(prepared.exact_dups),
        }
        done = insert_new(
            self.lake,
            prepared.spec,
            prepared.rows,
            batch_id=batch.batch_id,
            metadata=meta,
            compare_values=prepared.spec.lineage,
        )
        quarantined = prepared.quarantine.height
        if done.corrections.height:
            corrections = self._quarantine_frame(batch, prepared.spec, done.corrections, [], prepared.ingest_ts)
            self.lake.append_new(BRONZE_QUARANTINE, corrections)
            quarantined += corrections.height
        own_written = done.own if prepared.recovering else 0
        return done.written + own_written, done.duplicates + done.own - own_written, quarantined

    @staticmethod
    def _with_lineage(batch: Batch, spec: TableSpec, df: pl.DataFrame, ingest_ts: datetime) -> pl.DataFrame:
        extra = [
            pl.lit(ingest_ts).cast(pl.Datetime("ns", "UTC")).alias("ingest_ts"),
            pl.lit(batch.batch_id).alias("batch_id"),
        ]
        if "source" not in df.columns:
            extra.append(pl.lit(batch.source).alias("source"))
        df = df.with_columns(extra)
        if "date" in spec.partition_by:
            df = with_date_partition(df)
        return df.select(*spec.column_names, *[c for c in ("_row", "_raw") if c in df.columns])

    @staticmethod
    def _quarantine_frame(
        batch: Batch, spec: TableSpec, rejected: pl.DataFrame, unparsed: list[Rejected], ingest_ts: datetime
    ) -> pl.DataFrame:
        parts = []
        if rejected.height:
            src = pl.col("source") if "source" in rejected.columns else pl.lit(batch.source)
            parts.append(
                rejected.select(
                    src.alias("source"),
                    pl.col("_row").cast(pl.Int64).alias("row"),
                    _raw_column(rejected).alias("raw"),
                    pl.col(REASON).alias("reason"),
                )
            )
        if unparsed:
            parts.append(
                pl.DataFrame(
                    {
                        "source": [batch.source] * len(unparsed),
                        "row": [r.row for r in unparsed],
                        "raw": [r.raw for r in unparsed],
                        "reason": [r.reason for r in unparsed],
                    },
                    schema={"source": pl.String, "row": pl.Int64, "raw": pl.String, "reason": pl.String},
                )
            )
        if not parts:
            return pl.DataFrame(
                schema={
                    c: pl.DataFrame(BRONZE_QUARANTINE.schema.empty_table()).schema[c]
                    for c in BRONZE_QUARANTINE.column_names
                }
            )
        return (
            pl.concat(parts)
            .with_columns(
                pl.lit(spec.qualified).alias("table"),
                pl.lit(batch.file).alias("file"),
                pl.lit(ingest_ts).cast(pl.Datetime("ns", "UTC")).alias("ingest_ts"),
                pl.lit(batch.batch_id).alias("batch_id"),
            )
            .select(BRONZE_QUARANTINE.column_names)
        )

    def _quarantine_failure(self, batch: Batch, message: str) -> None:
        row = pl.DataFrame(
            {
                "source": [batch.source],
                "table": [batch.table_hint],
                "file": [batch.file],
                "row": [0],
                "raw": [""],
                "reason": [f"file could not be read: {message}"],
                "ingest_ts": [self.clock()],
                "batch_id": [batch.batch_id],
            },
            schema_overrides={"ingest_ts": pl.Datetime("ns", "UTC"), "row": pl.Int64},
        )
        self.lake.append_new(BRONZE_QUARANTINE, row)


def with_date_partition(df: pl.DataFrame) -> pl.DataFrame:
    """Add ``date`` (YYYY-MM-DD of ``ts``): format each distinct day once and join, rather than
    formatting every row (a batch spans a few days and millions of rows)."""
    days = df.select(pl.col("ts").dt.date().alias("_day"))
    labels = days.unique().with_columns(pl.col("_day").cast(pl.String).alias("date"))
    return df.with_columns(days.join(labels, on="_day", how="left", maintain_order="left").get_column("date"))


def iter_chunks(table: TableSpec, frames: Iterator[pl.DataFrame]) -> Iterator[Chunk]:
    """Wrap a stream of parsed frames for one table as chunks."""
    for df in frames:
        yield Chunk(table, df)
