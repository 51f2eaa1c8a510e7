"""Table upkeep: compact small files, checkpoint the log, vacuum files older than the time-travel window.

The signal sink appends every half second and ingest writes one commit per chunk, so tables gather
thousands of small files and log entries; reads slow down with them. ``maintain_table`` rewrites
small files into large ones (a data-preserving OPTIMIZE: ``dataChange=false``, rows unchanged),
writes a checkpoint so readers skip replaying the JSON log, and vacuums files no version inside the
retention window needs. Versions younger than the window stay readable (time travel); older ones
may lose their files, which is what the window means.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from deltalake.exceptions import DeltaError

from core.errors import TableError
from lakehouse.schema import TableSpec
from lakehouse.storage import Lake

TARGET_FILE_BYTES = 128 * 1024 * 1024


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
    """Compact, checkpoint and vacuum one table; None when it has never been written."""
    dt = lake.delta(spec)
    if dt is None:
        return None
    try:
        before = len(dt.file_uris())
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
