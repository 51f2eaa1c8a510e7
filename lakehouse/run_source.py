"""Ingest one source end to end: validate its parameters, list its batches, run the engine.

The CLI and the ingest flow both call ``run_source``; it keeps the security master in step first, so
rows for instruments that are not declared are quarantined rather than written.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator

from lakehouse import security_master
from lakehouse.ingest import Account, Batch, Clock, Ingestor, IngestReport
from lakehouse.sources.registry import adapter, parse_params
from lakehouse.storage import Lake


def sync_security_master(lake: Lake, clock: Clock) -> IngestReport:
    """Write the declared instruments to bronze.security_master (idempotent)."""
    return Ingestor(lake, clock).run(security_master.batches())


def source_batches(lake: Lake, source: str, params, clock: Clock) -> Iterator[Batch]:
    """Return the adapter's batches for validated ``params``.

    Stateful adapters (sql: a read watermark kept in the lake) declare a ``lake`` parameter and
    receive the lake the batches are written to.
    """
    batches = adapter(source).batches
    extra = {"lake": lake} if "lake" in inspect.signature(batches).parameters else {}
    return batches(params, clock, **extra)


def run_source(
    lake: Lake, source: str, raw_params: dict, clock: Clock, progress: Callable[[Account], None] | None = None
) -> IngestReport:
    """Ingest everything ``source`` yields for ``raw_params`` into bronze and return the account."""
    params = parse_params(source, raw_params)
    sync_security_master(lake, clock)
    known = security_master.known_symbols(lake=lake)  # declared, plus `mps symbols add` ones
    ingestor = Ingestor(lake, clock, known, instruments=security_master.instrument_rules())
    return ingestor.run(source_batches(lake, source, params, clock), progress=progress)
