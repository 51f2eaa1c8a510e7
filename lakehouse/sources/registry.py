"""The sources MPS can ingest from, by name.

Each adapter module defines ``Params`` (a strict pydantic model of its parameters) and
``batches(params, clock) -> Iterator[Batch]``. The registry maps a source name to its module so the
CLI and the ingest flow can list sources and validate parameters without importing them all.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from core.errors import ConfigError

SOURCES: dict[str, str] = {
    "lean": "lakehouse.sources.lean",  # LEAN ticks, bars, quotes, option universes
    "lean_reference": "lakehouse.sources.lean_reference",  # LEAN factor/map files, futures contracts + OI
    "lobster": "lakehouse.sources.lobster",
    "databento": "lakehouse.sources.databento",
    "tabular": "lakehouse.sources.tabular",  # generic CSV/Parquet with a declared column mapping
    "sql": "lakehouse.sources.sql",  # PostgreSQL trades/options by watermark
    "simulator": "lakehouse.sources.simulator",  # the multi-vendor market simulator
}


def adapter(name: str) -> ModuleType:
    """Import the adapter module for ``name``; unknown names list the known ones."""
    try:
        module = SOURCES[name]
    except KeyError:
        raise ConfigError(f"unknown source {name!r}; known: {', '.join(sorted(SOURCES))}") from None
    return importlib.import_module(module)


def parse_params(name: str, raw: dict):
    """Validate raw parameters (from CLI, flow or YAML) against the adapter's ``Params``."""
    from pydantic import ValidationError

    from core.config import format_validation_error

    mod = adapter(name)
    try:
        return mod.Params.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(f"source {name}", exc)) from exc
