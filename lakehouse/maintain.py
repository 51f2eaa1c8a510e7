"""Table upkeep: compact small files, checkpoint the log, vacuum files older than the time-travel window.

The signal sink appends every half second and ingest writes one commit per chunk, so tables gather
thousands of small files and log entries; reads slow down with them. ``maintain_table`` rewrites
small files into large ones (a data-preserving OPTIMIZE: ``dataChange=false``, rows unchanged),
writes a checkpoint so readers skip replaying the JSON log, and vacuums files no version inside the
retention window needs. Versions younger than the window stay readable (time travel); older ones
may lose their files, which is what the window means.

Compactions of one table take turns (``compaction_lease``): deltalake 1.6 commits two OPTIMIZEs that
ran at once over the same files (each removes them and adds its own rewrite, and its conflict check
lets a remove with ``dataChange=false`` pass), so the table would hold every one of those rows twice.
Appends running during a compaction are safe: their files are not rewritten.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta

from deltalake import CommitProperties, DeltaTable, Transaction
from deltalake.exceptions import CommitFailedError, DeltaError

from core.errors import TableError
from lakehouse.schema import TableSpec
from lakehouse.storage import Lake

TARGET_FILE_BYTES = 128 * 1024 * 1024
MAINTAIN_LEASE = timedelta(hours=1)  # a pass over one table ends well within it; a crashed one blocks no sink longer


def _lease_id(spec: TableSpec) -> str:
    return f"mps.compact:{spec.qualified}"


def _mark(dt: DeltaTable, spec: TableSpec, version: int) -> None:
    """Commit nothing but the lease's application transaction (its version: the expiry, ms since epoch)."""
    dt.create_write_transaction(
        [],
        mode="append",
        schema=dt.schema(),
        partition_by=list(spec.partition_by) or None,
        commit_properties=CommitProperties(app_transactions=[Transaction(_lease_id(spec), version)]),
    )


@contextlib.contextmanager
def compaction_lease(lake: Lake, spec: TableSpec, lease: timedelta) -> Iterator[bool]:
    """Take the table's compaction lease for at most ``lease``; yield whether this caller holds it.

    The lease is a Delta application transaction whose version is its expiry. Taking it is a commit
    carrying that transaction: a rival that read the table before it fails Delta's conflict check
    (the same application id committed after its read version), and one that reads after it sees an
    unexpired lease and stands back. The holder gives it back (expiry 0) when done; a holder that
    died leaves it to expire. The work done under it must end within ``lease`` (wall clocks of the
    writers are assumed to agree to well within it).
    """
    dt = lake.delta(spec)
    if dt is None:
        yield False
        return
    now_ms = int(time.time() * 1000)
    if (dt.transaction_version(_lease_id(spec)) or 0) > now_ms:  # another compactor holds it
        yield False
        return
    expiry = now_ms + int(lease.total_seconds() * 1000)
    try:
        _mark(dt, spec, expiry)
    except CommitFailedError:  # another compactor took it first
        yield False
        return
    try:
        yield True
    finally:
        with contextlib.suppress(DeltaError, OSError):
            dt.update_incremental()
            if dt.transaction_version(_lease_id(spec)) == expiry:  # still ours: give it back
                _mark(dt, spec, 0)


@dataclass(frozen=True)
class Upkeep:
    """What maintenance did to one table."""

    table: str
    files_before: int
    files_after: int
    compacted: int  # small files rewritten
    vacuumed: int  # unreferenced files deleted
    version: int

    def line(self) -> str:
        return (
            f"{self.table}: files {self.files_before:,} -> {self.files_after:,} (compacted {self.compacted:,},"
            f" vacuumed {self.vacuumed:,}), version {self.version}, checkpointed"
        )


def maintain_table(
    lake: Lake, spec: TableSpec, retention: timedelta, target_file_bytes: int = TARGET_FILE_BYTES
) -> Upkeep | None:
    """Compact, checkpoint and vacuum one table; None when it has never been written.

    The compaction runs under the table's compaction lease; while another compactor (a signal sink)
    holds it, this pass only checkpoints and vacuums, and the sink's compaction stands in for it.
    """
    dt = lake.delta(spec)
    if dt is None:
        return None
    try:
        before = len(dt.file_uris())
        metrics: dict = {}
        with compaction_lease(lake, spec, MAINTAIN_LEASE) as held:
            if held:
                dt.update_incremental()
                metrics = dt.optimize.compact(target_size=target_file_bytes)
        dt.update_incremental()
        dt.create_checkpoint()
        removed = dt.vacuum(
            retention_hours=max(0, int(retention.total_seconds() // 3600)),
            dry_run=False,
            enforce_retention_duration=False,
        )
        dt.update_incremental()
        return Upkeep(
            spec.qualified,
            before,
            len(dt.file_uris()),
            int(metrics.get("numFilesRemoved", 0)),
            len(removed),
            dt.version(),
        )
    except (DeltaError, OSError) as exc:
        raise TableError(f"{spec.qualified}: maintenance failed: {exc}") from exc


def compact_partitions(
    lake: Lake,
    spec: TableSpec,
    partitions: Iterable[Mapping[str, str]],
    target_file_bytes: int,
    lease: timedelta = timedelta(minutes=5),
) -> int | None:
    """Compact the small files of some partitions in place (rows unchanged); return how many were rewritten.

    A writer that appends all day (the signal sink) calls this on the partitions it has just written, so
    the table's file count, and with it the cost of every later commit and key check, stays bounded.
    Appends running meanwhile do not conflict with it (their files are not rewritten). None when
    another compactor holds the table's lease: this turn is skipped.
    """
    parts = list(partitions)
    if lake.delta(spec) is None:
        return 0
    rewritten = 0
    try:
        with compaction_lease(lake, spec, lease) as held:
            if not held:
                return None
            dt = lake.delta(spec)
            assert dt is not None  # it existed a moment ago, and tables are never dropped
            for part in parts:
                filters = [(name, "=", value) for name, value in part.items()]
                metrics = dt.optimize.compact(partition_filters=filters or None, target_size=target_file_bytes)
                rewritten += int(metrics.get("numFilesRemoved", 0))
    except (DeltaError, OSError) as exc:
        raise TableError(f"{spec.qualified} {parts}: compaction failed: {exc}") from exc
    return rewritten


def maintain(
    lake: Lake, specs: Iterable[TableSpec], retention: timedelta, target_file_bytes: int = TARGET_FILE_BYTES
) -> tuple[list[Upkeep], list[str]]:
    """Maintain every written table; one failing table is reported and never stops the others."""
    done, failed = [], []
    for spec in specs:
        try:
            result = maintain_table(lake, spec, retention, target_file_bytes)
        except TableError as exc:
            failed.append(str(exc))
            continue
        if result is not None:
            done.append(result)
    return done, failed
