"""The security master (seed MPS 2.1): instruments the platform knows, declared in YAML.

``configs/security_master/*.yaml`` each hold a list of instruments (one file per family so that
adding a market touches one file). A user adds an instrument without editing the repository with
``mps symbols add`` (``add_instrument``): it is kept in the lake's bronze.security_master only.
Ingest rejects rows for symbols that are neither declared nor added.
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
from lakehouse.schema import LINEAGE
from lakehouse.storage import Lake
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


def known_symbols(directory: Path = DIRECTORY, lake: Lake | None = None) -> frozenset[str]:
    """Symbols ingest accepts: the declared ones, plus those added to ``lake``'s security master."""
    return frozenset(i.symbol_id for i in all_instruments(lake, directory))


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


# ---- instruments added at run time (``mps symbols add``): kept in the lake's bronze.security_master ----
ASSET_CLASSES = ("equity", "future", "option", "fx", "crypto", "index")
ROUND_THE_CLOCK = ("24/7", "24/5")
ADDED_SOURCE = "mps-symbols"  # bronze.security_master.source of rows added by ``add_instrument``
_TABLE_FIELDS = tuple(c for c in BRONZE_SECURITY_MASTER.column_names if c not in LINEAGE)


def check_new_instrument(inst: Instrument) -> None:
    """Refuse an instrument the platform could not use: a malformed id, an unknown asset class or calendar,
    a currency that is not an ISO code. Each error names the field and the accepted values."""
    root, _, venue = inst.symbol_id.partition(":")
    if not root or not venue or ":" in venue or inst.symbol_id != inst.symbol_id.strip():
        raise ConfigError(f"symbol_id {inst.symbol_id!r}: expected ROOT:VENUE, e.g. AAPL:US or CL:NYM")
    if inst.asset_class not in ASSET_CLASSES:
        raise ConfigError(
            f"{inst.symbol_id}: asset_class {inst.asset_class!r} is not one of {', '.join(ASSET_CLASSES)}"
        )
    if not (len(inst.currency) == 3 and inst.currency.isalpha() and inst.currency.isupper()):
        raise ConfigError(f"{inst.symbol_id}: currency {inst.currency!r} is not an ISO 4217 code like USD")
    for name in ("tick_size", "multiplier", "lot_size"):
        if not getattr(inst, name) > 0:
            raise ConfigError(f"{inst.symbol_id}: {name} must be > 0, got {getattr(inst, name)}")
    if inst.calendar not in ROUND_THE_CLOCK:
        import exchange_calendars as xcals

        if inst.calendar not in xcals.get_calendar_names():
            raise ConfigError(
                f"{inst.symbol_id}: calendar {inst.calendar!r} is neither {' nor '.join(ROUND_THE_CLOCK)} nor an "
                "exchange_calendars name (XNYS, CMES, XLON, ...)"
            )


def lake_instruments(lake: Lake) -> list[Instrument]:
    """Instruments bronze.security_master holds (declared ones synced by ingest, and added ones)."""
    if not lake.exists(BRONZE_SECURITY_MASTER):
        return []
    rows = lake.read(BRONZE_SECURITY_MASTER, columns=list(_TABLE_FIELDS))
    return [Instrument.model_validate(r) for r in rows.unique("symbol_id", keep="first").iter_rows(named=True)]


def all_instruments(lake: Lake | None = None, directory: Path = DIRECTORY) -> list[Instrument]:
    """The declared instruments plus those only the lake knows (a declared entry wins: it has the rules)."""
    declared = {i.symbol_id: i for i in load_instruments(directory)}
    added = [i for i in lake_instruments(lake) if i.symbol_id not in declared] if lake is not None else []
    return [*declared.values(), *added]


def add_instrument(lake: Lake, inst: Instrument, clock, directory: Path = DIRECTORY) -> bool:
    """Add ``inst`` to the lake's security master; True if written, False if already there with these fields.

    Idempotent; an instrument already known (declared or added) with other fields is refused with
    the fields that differ, so a typo never silently redefines a contract.
    """
    from lakehouse.ingest import Ingestor

    check_new_instrument(inst)
    known = {i.symbol_id: i for i in all_instruments(lake, directory)}
    current = known.get(inst.symbol_id)
    if current is not None:
        differ = [f for f in _TABLE_FIELDS if getattr(current, f) != getattr(inst, f)]
        if differ:
            was = ", ".join(f"{f}={getattr(current, f)!r} (given {getattr(inst, f)!r})" for f in differ)
            raise ConfigError(f"{inst.symbol_id} is already in the security master with {was}")
        return False  # declared or added before with these very fields
    frame = pl.DataFrame([inst.model_dump(include=set(_TABLE_FIELDS))]).select(_TABLE_FIELDS)
    batch = Batch(
        ADDED_SOURCE,
        f"mps symbols add {inst.symbol_id}",
        text_batch_id(ADDED_SOURCE, frame.write_csv()),
        [Chunk(BRONZE_SECURITY_MASTER, frame)],
    )
    report = Ingestor(lake, clock).run([batch])
    if report.failures:
        raise ConfigError(f"{inst.symbol_id}: not added: {report.failures[0].message}")
    return report.total("rows_written") > 0
