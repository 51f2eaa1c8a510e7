"""LEAN reference data: equity factor and map files, futures per contract with open interest.

Files (``<root>`` = a LEAN ``Data/`` folder; layouts in ``../shared/data/lean/SOURCE.txt``):

- ``equity/usa/factor_files/<t>.csv`` -> bronze.corporate_actions (events derived in
  ``lakehouse.corporate_actions``: split ratio from the split-factor step, dividend from the
  price-factor step and the reference close; ``known_at`` = that reference close);
- ``equity/usa/map_files/<t>.csv`` -> bronze.symbol_map (``symbol_id`` = ``<T>:US`` of the file);
- ``future/<mkt>/{daily,hour}/<root>_{trade,quote,openinterest}.zip`` and
  ``future/<mkt>/minute/<root>/<date>_{trade,quote,openinterest}.zip`` (one CSV per contract) ->
  bronze.bars (tf 1d/1h/1m; kind trade, bid, ask) and bronze.open_interest;
- the contracts seen in those files -> bronze.futures_contracts (dates from
  ``lakehouse.futures_contracts`` rules, multiplier and tick size from
  ``symbol-properties/symbol-properties-database.csv``).

Time zone, verified on the data: LEAN futures files are in UTC (LEAN's data time zone for CME and
COMEX futures; the exchange time zone America/Chicago is only used for its market hours). On
2013-12-18 the ES minute volume peaks in the 19:00 bar, the 14:00 ET FOMC statement, and the
15:15-15:30 CT trading halt shows as the missing 21:15-21:29 minutes. LEAN stamps bars at their
START; bronze stores their END. A daily row ``YYYYMMDD 00:00`` is stamped at the next midnight UTC
(its last minute is ~21:30 UTC, so this never claims knowledge early).
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import polars as pl
from pydantic import Field

from core.config import Strict
from core.errors import SourceError
from lakehouse.corporate_actions import events_from_factor_rows
from lakehouse.futures_contracts import contract_dates, contract_symbol, market, read_symbol_properties
from lakehouse.ingest import Batch, Chunk, Clock, Rejected, file_batch_id, text_batch_id
from lakehouse.sources import lean_reference_parse as parse
from lakehouse.tables import (
    BRONZE_BARS,
    BRONZE_CORPORATE_ACTIONS,
    BRONZE_FUTURES_CONTRACTS,
    BRONZE_OPEN_INTEREST,
    BRONZE_SYMBOL_MAP,
)

SOURCE = "lean_reference"
RESOLUTION_TF = {"daily": "1d", "hour": "1h", "minute": "1m"}
MEMBER_MONTH = re.compile(r"_(?P<kind>trade|quote|openinterest)_(?P<ym>\d{6})\.csv$")


class Params(Strict):
    root: Path = Field(description="LEAN Data folder (the one holding equity/ and future/)")
    equities: bool = True
    tickers: list[str] | None = Field(default=None, description="equity file stems (aapl, goog); None = all")
    futures: list[str] = Field(default_factory=lambda: ["cme/es", "comex/gc"], description="<market>/<root> pairs")
    resolutions: list[str] = Field(default_factory=lambda: ["daily", "hour", "minute"])
    kinds: list[str] = Field(default_factory=lambda: ["trade", "quote", "openinterest"])
    minute_from: date | None = None
    minute_to: date | None = None


def equity_symbol(stem: str) -> str:
    return f"{stem.upper()}:US"


def _text(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError as exc:
        raise SourceError(f"{path}: cannot read: {exc.strerror or exc}") from exc


def factor_chunks(path: Path) -> Iterator[Chunk]:
    rows, rejected = parse.parse_factor_rows(_text(path), str(path))
    yield Chunk(BRONZE_CORPORATE_ACTIONS, events_from_factor_rows(rows, equity_symbol(path.stem)), rejected)


def map_chunks(path: Path) -> Iterator[Chunk]:
    rows, rejected = parse.parse_map_rows(_text(path), str(path))
    yield Chunk(BRONZE_SYMBOL_MAP, rows.with_columns(pl.lit(equity_symbol(path.stem)).alias("symbol_id")), rejected)


def _member_contract(name: str, root: str, suffix: str) -> tuple[str, str] | None:
    m = MEMBER_MONTH.search(name)
    if not m:
        return None
    ym = m["ym"]
    return m["kind"], contract_symbol(root, int(ym[:4]), int(ym[4:]), suffix)


def _file_date(path: Path) -> date | None:
    m = re.match(r"^(\d{8})_", path.name)
    return date(int(m[1][:4]), int(m[1][4:6]), int(m[1][6:])) if m else None


def future_chunks(path: Path, root: str, suffix: str, tf: str) -> Iterator[Chunk]:
    """One chunk per contract CSV inside a LEAN futures zip."""
    file_date = _file_date(path) if tf == "1m" else None
    try:
        zf = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise SourceError(f"{path}: cannot open zip: {exc}") from exc
    with zf:
        for name in zf.namelist():
            found = _member_contract(name, root, suffix)
            where = f"{path}:{name}"
            if found is None:
                yield Chunk(
                    BRONZE_BARS,
                    parse.parse_future_trade_bars("", where, "", tf)[0],
                    [Rejected(0, name, f"{where}: member name has no _<kind>_<YYYYMM>.csv contract month")],
                )
                continue
            kind, symbol = found
            text = zf.read(name).decode(errors="replace")
            if kind == "trade":
                data, rej = parse.parse_future_trade_bars(text, where, symbol, tf, file_date)
                yield Chunk(BRONZE_BARS, data, rej)
            elif kind == "quote":
                data, rej = parse.parse_future_quote_bars(text, where, symbol, tf, file_date)
                yield Chunk(BRONZE_BARS, data, rej)
            else:
                data, rej = parse.parse_open_interest(text, where, symbol, tf, file_date)
                yield Chunk(BRONZE_OPEN_INTEREST, data, rej)


def future_files(params: Params, lean_market: str, root: str) -> list[tuple[Path, str]]:
    """(zip path, tf) for one market/root, filtered by resolution, kind and minute date range."""
    base = params.root / "future" / lean_market
    out: list[tuple[Path, str]] = []
    for res in params.resolutions:
        tf = RESOLUTION_TF[res]
        folder = base / res / root if res == "minute" else base / res
        pattern = "*_*.zip" if res == "minute" else f"{root}_*.zip"
        for p in sorted(folder.glob(pattern)):
            kind = p.stem.rsplit("_", 1)[-1]
            if kind not in params.kinds:
                continue
            d = _file_date(p)
            if (
                res == "minute"
                and d is not None
                and ((params.minute_from and d < params.minute_from) or (params.minute_to and d > params.minute_to))
            ):
                continue
            out.append((p, tf))
    return out


def contract_frame(contracts: set[str], lean_market: str, root: str, properties: Path) -> pl.DataFrame:
    """bronze.futures_contracts rows for the contracts seen in the files."""
    from lakehouse.futures_contracts import parse_contract

    mkt = market(lean_market)
    multiplier, tick = read_symbol_properties(properties, lean_market, root)
    rows = []
    for sym in sorted(contracts):
        r, year, month = parse_contract(sym)
        d = contract_dates(r, year, month, mkt.calendar)
        rows.append(
            {
                "root": r,
                "contract": sym,
                "expiry": d.expiry,
                "first_notice": d.first_notice,
                "last_trade": d.last_trade,
                "multiplier": multiplier,
                "tick_size": tick,
            }
        )
    return pl.DataFrame(
        rows,
        schema={
            "root": pl.String,
            "contract": pl.String,
            "expiry": pl.Date,
            "first_notice": pl.Date,
            "last_trade": pl.Date,
            "multiplier": pl.Float64,
            "tick_size": pl.Float64,
        },
    )


def batches(params: Params, clock: Clock | None = None) -> Iterator[Batch]:
    """Yield one batch per reference file or futures zip, then one per root's contract definitions."""
    eq = params.root / "equity" / "usa"
    if params.equities:
        for folder, chunks in (("factor_files", factor_chunks), ("map_files", map_chunks)):
            for p in sorted((eq / folder).glob("*.csv")):
                if params.tickers is None or p.stem in params.tickers:
                    yield Batch(SOURCE, str(p), file_batch_id(SOURCE, p), chunks(p), table_hint=f"bronze.{folder}")
    for spec in params.futures:
        lean_market, root = spec.lower().split("/", 1)
        suffix = market(lean_market).suffix
        seen: set[str] = set()
        for p, tf in future_files(params, lean_market, root):
            try:
                with zipfile.ZipFile(p) as zf:
                    seen |= {c[1] for n in zf.namelist() if (c := _member_contract(n, root, suffix))}
            except (OSError, zipfile.BadZipFile):
                pass  # the file's own batch reports it
            yield Batch(
                SOURCE,
                str(p),
                file_batch_id(SOURCE, p, tf),
                future_chunks(p, root, suffix, tf),
                table_hint="bronze.bars",
            )
        if seen:
            props = params.root / "symbol-properties" / "symbol-properties-database.csv"
            frame = contract_frame(seen, lean_market, root, props)
            yield Batch(
                SOURCE,
                f"{spec} contracts",
                text_batch_id(SOURCE, spec, frame.write_csv()),
                [Chunk(BRONZE_FUTURES_CONTRACTS, frame)],
                table_hint="bronze.futures_contracts",
            )
