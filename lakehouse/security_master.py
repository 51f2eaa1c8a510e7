"""The security master (seed MPS 2.1): instruments the platform knows, declared in YAML.

``configs/security_master/*.yaml`` each hold a list of instruments (one file per family so that
adding a market touches one file). Ingest rejects rows for symbols that are not declared.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import polars as pl
import yaml
from pydantic import ValidationError

from core.config import Strict, format_validation_error
from core.errors import ConfigError
from core.resources import config_dir
from lakehouse.ingest import Batch, Chunk, text_batch_id
from lakehouse.tables import BRONZE_SECURITY_MASTER
from lakehouse.validate import InstrumentRule

DIRECTORY = config_dir() / "security_master"


class Instrument(Strict):
    symbol_id: str
    asset_class: str
    exchange: str
    currency: str = "USD"
    calendar: str
    tick_size: float = 0.01
    multiplier: float = 1.0
    lot_size: float = 1.0
    description: str | None = None
    # Plausibility on ingest (lakehouse.validate.InstrumentRule); not columns of bronze.security_master.
    price_min: float | None = None
    price_max: float | None = None
    tick_check: bool = False  # every print must sit on the tick grid (off for feeds with sub-tick prints)


def load_instruments(directory: Path = DIRECTORY) -> list[Instrument]:
    """Read every YAML file in ``directory``; a bad entry names its file and index."""
    out: dict[str, Instrument] = {}
    for path in sorted(directory.glob("*.yaml")):
        items = yaml.safe_load(path.read_text()) or []
        if not isinstance(items, list):
            raise ConfigError(f"{path}: expected a list of instruments")
        for i, item in enumerate(items):
            try:
                inst = Instrument.model_validate(item)
            except ValidationError as exc:
                raise ConfigError(format_validation_error(f"{path}[{i}]", exc)) from exc
            if inst.symbol_id in out and out[inst.symbol_id] != inst:
                raise ConfigError(f"{path}[{i}]: {inst.symbol_id} declared twice with different fields")
            out[inst.symbol_id] = inst
    return list(out.values())


def known_symbols(directory: Path = DIRECTORY) -> frozenset[str]:
    return frozenset(i.symbol_id for i in load_instruments(directory))


_RULE_FIELDS = {"price_min", "price_max", "tick_check"}


def instrument_frame(directory: Path = DIRECTORY) -> pl.DataFrame:
    return pl.DataFrame([i.model_dump(exclude=_RULE_FIELDS) for i in load_instruments(directory)])


def instrument_rules(directory: Path = DIRECTORY) -> dict[str, InstrumentRule]:
    """Per-instrument plausibility rules (price band, tick grid) for the instruments that declare any."""
    return {
        i.symbol_id: InstrumentRule(i.price_min, i.price_max, i.tick_size if i.tick_check else None)
        for i in load_instruments(directory)
        if i.price_min is not None or i.price_max is not None or i.tick_check
    }


def batches(directory: Path = DIRECTORY, as_of: datetime | None = None):
    """The security master as one ingest batch (id = hash of its content)."""
    frame = instrument_frame(directory)
    yield Batch(
        "security_master",
        str(directory),
        text_batch_id("security_master", frame.write_csv()),
        [Chunk(BRONZE_SECURITY_MASTER, frame)],
    )
