"""File discovery and batch ids shared by the file adapters (tabular, LOBSTER, Databento)."""

from __future__ import annotations

import glob
from pathlib import Path

from core.errors import MpsError
from lakehouse.ingest import file_batch_id, text_batch_id


def expand_paths(paths: list[str], pattern: str = "*") -> list[Path]:
    """Expand files, directories (matched with ``pattern``) and glob patterns, sorted and unique.

    A plain path that does not exist is kept, so its batch fails with a message naming it instead
    of vanishing silently.
    """
    out: set[Path] = set()
    for p in paths:
        path = Path(p)
        if path.is_dir():
            out.update(f for f in path.glob(pattern) if f.is_file())
        elif any(ch in p for ch in "*?["):
            out.update(Path(f) for f in glob.glob(p) if Path(f).is_file())
        else:
            out.add(path)
    return sorted(out)


def batch_id_or_fallback(source: str, path: Path, extra: str = "") -> str:
    """Content-hash batch id; an unreadable file gets a name-based id so its failure is recorded."""
    try:
        return file_batch_id(source, path, extra)
    except MpsError:
        return text_batch_id(source, str(path), extra, "unreadable")
