"""LEAN flat files (QuantConnect's data folder) -> bronze trades, quotes, bars and option chains.

Reads US equity ticks (AlgoSeek trades and quotes), second/minute/hour/daily equity bars, FXCM and
OANDA EURUSD ticks and minute/daily quote bars, crypto spot and perpetual bars (Binance, Bybit,
Coinbase, Bitfinex) and option-chain universes. Every file is one ``Batch`` (id = hash of source,
file content and row window); a file that cannot be read fails alone with a ``SourceError`` naming
it. ``source`` is the vendor: "lean" for equities and options, the FX vendor or crypto exchange
otherwise. Conventions (time zones, bar-end stamps, quote sides, suspicious flags) are documented
in ``lean_time``, ``lean_layouts`` and ``lean_universe``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator

from core.config import Strict
from core.errors import MpsError, SourceError
from lakehouse.ingest import Batch, Chunk, Clock, file_batch_id, text_batch_id
from lakehouse.sources.lean_layouts import market_chunk
from lakehouse.sources.lean_parse import read_bytes
from lakehouse.sources.lean_paths import ASSET_CLASSES, KINDS, RESOLUTIONS, LeanFile, describe, discover
from lakehouse.sources.lean_time import data_tz
from lakehouse.sources.lean_universe import universe_chunk

AssetClass = Literal["equity", "forex", "crypto", "cryptofuture", "option", "indexoption"]
Resolution = Literal["tick", "second", "minute", "hour", "daily"]
Kind = Literal["trade", "quote", "universe"]


class Params(Strict):
    """What to ingest from a LEAN data folder; every filter is optional except the root."""

    root: Path = Field(description="the LEAN data folder (the one holding equity/, forex/, crypto/ ...)")
    asset_classes: tuple[AssetClass, ...] = ASSET_CLASSES  # type: ignore[assignment]
    resolutions: tuple[Resolution, ...] = RESOLUTIONS  # type: ignore[assignment]
    kinds: tuple[Kind, ...] = KINDS  # type: ignore[assignment]
    tickers: tuple[str, ...] = Field((), description="LEAN tickers or symbol ids; empty = all")
    markets: tuple[str, ...] = Field((), description="market folders (usa, fxcm, oanda, binance, ...); empty = all")
    start: date | None = Field(None, description="first date (inclusive) of day files and of rows in history files")
    end: date | None = Field(None, description="last date (inclusive)")
    files: tuple[Path, ...] = Field(
        (), description="explicit files (relative to root or absolute); overrides discovery"
    )
    fx_data_tz: dict[str, str] = Field(
        default_factory=lambda: {"fxcm": "UTC", "oanda": "UTC"},
        description="time zone of each FX vendor's timestamps (LEAN declares FXCM Etc/GMT+5)",
    )

    @field_validator("fx_data_tz")
    @classmethod
    def _zones_exist(cls, v: dict[str, str]) -> dict[str, str]:
        for vendor, tz in v.items():
            try:
                ZoneInfo(tz)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"fx_data_tz.{vendor}: unknown time zone {tz!r}") from None
        return v

    @model_validator(mode="after")
    def _window_ordered(self) -> Params:
        if self.start and self.end and self.start > self.end:
            raise ValueError(f"start {self.start} is after end {self.end}")
        return self


def _failing(error: MpsError) -> Iterator[Chunk]:
    """Chunks of a file that cannot be read: raising while the engine reads them fails that batch alone."""
    raise error
    yield  # pragma: no cover  (makes this a generator)


def _chunks(f: LeanFile, params: Params) -> Iterator[Chunk]:
    data = read_bytes(f.path)
    if f.kind == "universe":
        yield universe_chunk(f, data)
    else:
        tz = data_tz(f.asset_class, f.market, params.fx_data_tz)
        yield market_chunk(f, data, tz, (params.start, params.end))


def _files(params: Params) -> list[LeanFile | tuple[Path, SourceError]]:
    root = params.root
    if not params.files:
        if not root.is_dir():
            raise SourceError(f"{root}: LEAN data folder not found")
        return list(
            discover(
                root,
                asset_classes=params.asset_classes,
                resolutions=params.resolutions,
                kinds=params.kinds,
                tickers=params.tickers,
                markets=params.markets,
                start=params.start,
                end=params.end,
            )
        )
    out: list[LeanFile | tuple[Path, SourceError]] = []
    for p in params.files:
        path = p if p.is_absolute() else root / p
        try:
            out.append(describe(path, root))
        except SourceError as exc:
            out.append((path, exc))
    return out


def batches(params: Params, clock: Clock | None = None) -> Iterator[Batch]:
    """Yield one batch per selected LEAN file; unreadable files yield batches that fail alone."""
    window = f"{params.start or ''}:{params.end or ''}:{sorted(params.fx_data_tz.items())}"
    for item in _files(params):
        if isinstance(item, tuple):
            path, error = item
            yield Batch("lean", str(path), text_batch_id("lean", path, "undescribed"), _failing(error))
            continue
        f = item
        try:
            if not f.path.is_file():
                raise SourceError(f"{f.path}: file not found")
            batch_id = file_batch_id(f.source, f.path, window)
            chunks: Iterator[Chunk] = _chunks(f, params)
        except SourceError as exc:
            batch_id, chunks = text_batch_id(f.source, f.path, "unreadable"), _failing(exc)
        yield Batch(f.source, str(f.path), batch_id, chunks, table_hint=f.table)
