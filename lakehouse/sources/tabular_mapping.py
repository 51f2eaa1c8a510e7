"""Declared column mappings for generic CSV/Parquet files (configs/mappings/*.yaml).

A mapping says which table the file feeds, which source column fills which table column, what
is constant, how the timestamp is written (format, time zone, bar start or end) and where the
symbol comes from. Mappings are strict: an unknown key, an unknown target column or a missing
required column is an error naming it, never a silent default.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import Field, ValidationError, model_validator

from core.config import Strict, format_validation_error
from core.errors import ConfigError
from core.resources import config_dir
from lakehouse.tables import BRONZE_BARS, BRONZE_QUOTES, BRONZE_TRADES

DIRECTORY = config_dir() / "mappings"
TARGETS = {t.qualified: t for t in (BRONZE_BARS, BRONZE_TRADES, BRONZE_QUOTES)}
PRICE_COLUMNS = frozenset({"open", "high", "low", "close", "vwap", "price", "bid", "ask"})
DERIVED = frozenset({"ts", "symbol_id", "seq"})


class TimestampSpec(Strict):
    """How to read the timestamp column and turn it into the table's UTC ``ts``."""

    column: str
    format: str | None = Field(None, description="strptime format; omitted: ISO-8601 (or epoch with unit)")
    unit: Literal["s", "ms", "us", "ns"] | None = Field(None, description="the column holds epoch integers")
    tz: str = Field("UTC", description="time zone of naive timestamps (IANA name)")
    stamp: Literal["start", "end", "point", "session_close"] = Field(
        "point",
        description="bars: the label is the bar start or end; point: an event time (trades, quotes); "
        "session_close: a date-only daily bar ends at that session's close in `calendar`",
    )
    calendar: str | None = Field(None, description="exchange calendar for stamp session_close (e.g. XNYS)")
    truncate: str | None = Field(None, description="truncate the label to this period first (e.g. 1mo)")
    bar_length: str | None = Field(None, description="polars duration (1m, 1h, 1d, 1mo): start -> end")

    @model_validator(mode="after")
    def _consistent(self) -> TimestampSpec:
        if self.stamp == "start" and not self.bar_length:
            raise ValueError("stamp 'start' needs bar_length to compute the bar end")
        if (self.stamp == "session_close") != (self.calendar is not None):
            raise ValueError("stamp 'session_close' and calendar go together")
        if self.format and self.unit:
            raise ValueError("give format or unit, not both")
        return self


class Mapping(Strict):
    """One dataset layout: target table, columns, constants, timestamp and symbol."""

    table: Literal["bronze.bars", "bronze.trades", "bronze.quotes"]
    source: str = Field(description="vendor name stored in the rows' source column")
    files: list[str] = Field(default_factory=list, description="glob patterns relative to the data root")
    separator: str = ","
    null_values: list[str] = Field(default_factory=list, description="tokens that mean 'no value' (e.g. '.')")
    symbol_id: str | None = None
    symbol_column: str | None = None
    symbol_from_path: str | None = Field(None, description="regex on the file name with a group 'symbol'")
    symbol_template: str = Field("{symbol}", description="symbol_id from the extracted symbol, e.g. {symbol}:US")
    symbol_map: dict[str, str] = Field(default_factory=dict, description="extracted symbol -> symbol_id")
    columns: dict[str, str] = Field(description="target column -> source column name")
    constants: dict[str, str | int | float] = Field(default_factory=dict)
    timestamp: TimestampSpec
    price_scale: float = Field(1.0, gt=0, description="multiply price columns by this")
    value_maps: dict[str, dict[str, str | int | float]] = Field(
        default_factory=dict, description="target column -> {text in the file: value}, e.g. side: {buy: 1, sell: -1}"
    )
    unique_prints: bool = Field(
        False, description="prints are unique (trade ids or sub-ms times): a row repeating another is a duplicate"
    )

    @model_validator(mode="after")
    def _targets(self) -> Mapping:
        spec = TARGETS[self.table]
        payload = {c.name for c in spec.payload_columns}
        for where, names in (("columns", self.columns), ("constants", self.constants)):
            unknown = sorted(set(names) - (payload - DERIVED))
            if unknown:
                raise ValueError(
                    f"{where}: {unknown} are not columns of {self.table} (allowed: {sorted(payload - DERIVED)})"
                )
        unmapped = sorted(set(self.value_maps) - set(self.columns))
        if unmapped:
            raise ValueError(f"value_maps: {unmapped} are not mapped columns")
        both = sorted(set(self.columns) & set(self.constants))
        if both:
            raise ValueError(f"{both} are both mapped and constant")
        required = {c.name for c in spec.payload_columns if not c.nullable} - DERIVED
        missing = sorted(required - set(self.columns) - set(self.constants))
        if missing:
            raise ValueError(f"required columns of {self.table} are neither mapped nor constant: {missing}")
        symbol_ways = [x for x in (self.symbol_id, self.symbol_column, self.symbol_from_path) if x]
        if len(symbol_ways) != 1:
            raise ValueError("give exactly one of symbol_id, symbol_column, symbol_from_path")
        if self.symbol_from_path and "symbol" not in re.compile(self.symbol_from_path).groupindex:
            raise ValueError("symbol_from_path needs a named group (?P<symbol>...)")
        if "{symbol}" not in self.symbol_template:
            raise ValueError("symbol_template must contain {symbol}")
        return self

    def source_columns(self) -> list[str]:
        """Columns the file must have."""
        cols = [*self.columns.values(), self.timestamp.column]
        if self.symbol_column:
            cols.append(self.symbol_column)
        return list(dict.fromkeys(cols))


def load_mapping(ref: str | Path, directory: Path = DIRECTORY) -> Mapping:
    """Load a mapping by name (configs/mappings/<name>.yaml) or path; errors name the key path."""
    path = Path(ref)
    if path.suffix not in (".yaml", ".yml"):
        path = directory / f"{ref}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in directory.glob("*.yaml")))
        raise ConfigError(f"mapping {ref!r} not found ({path}); known mappings: {known}")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    return validate_mapping(raw, str(path))


def validate_mapping(raw: object, where: str) -> Mapping:
    """Validate a raw mapping dict; the error names ``where`` and each bad key."""
    try:
        return Mapping.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(f"mapping {where}", exc)) from exc
