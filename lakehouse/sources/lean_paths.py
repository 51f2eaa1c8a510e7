"""Where LEAN keeps each kind of file, and what a file's path says about its content.

LEAN's flat-file tree (``<root>/<security type>/<market>/<resolution>/...``) encodes the asset class,
the vendor or market, the resolution, the ticker and, for intraday files, the date. ``describe``
turns one path into a ``LeanFile``; ``discover`` walks a root and lists the files a filter selects.
Symbol mapping (LEAN ticker -> platform ``symbol_id``) lives here too, since it depends only on the
path.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from core.errors import SourceError

ASSET_CLASSES = ("equity", "forex", "crypto", "cryptofuture", "option", "indexoption")
RESOLUTIONS = ("tick", "second", "minute", "hour", "daily")
KINDS = ("trade", "quote", "universe")
INTRADAY = ("tick", "second", "minute")

# Quote currencies treated as US dollars for crypto pairs: stablecoins pegged 1:1 (documented mapping;
# silver compares venues and will show any de-peg as a price disagreement).
USD_LIKE = ("USDT", "BUSD", "USDC", "USD")

_DAY_FILE = re.compile(r"^(\d{8})_(trade|quote)(?:_[a-z]+)?\.zip$")
_WHOLE_FILE = re.compile(r"^([a-z0-9.]+?)(?:_(trade|quote))?\.zip$")
_UNIVERSE_FILE = re.compile(r"^(\d{8})\.csv$")


@dataclass(frozen=True)
class LeanFile:
    """One LEAN file and what its path says: asset class, market, resolution, kind, ticker, date."""

    path: Path
    asset_class: str
    market: str
    resolution: str
    kind: str
    ticker: str
    day: date | None = None

    @property
    def source(self) -> str:
        """The vendor name stored in ``source``: AlgoSeek-via-LEAN is "lean"; FX and crypto name the venue."""
        return "lean" if self.asset_class in ("equity", "option", "indexoption") else self.market

    @property
    def symbol_id(self) -> str:
        return symbol_id(self.asset_class, self.ticker)

    @property
    def table(self) -> str:
        if self.kind == "universe":
            return "bronze.options_chain"
        if self.resolution == "tick":
            return "bronze.trades" if self.kind == "trade" else "bronze.quotes"
        return "bronze.bars"


def symbol_id(asset_class: str, ticker: str) -> str:
    """Map a LEAN ticker to the platform's symbol id ("aapl" -> "AAPL:US", "btcusdt" -> "BTCUSD:CRYPTO").

    Crypto pairs quoted in a USD stablecoin map to the USD pair. Perpetual futures get their own ids:
    ``BTCUSD-PERP:CRYPTO`` for USD(T)-margined linear contracts (size in coins) and
    ``BTCUSD-INVPERP:CRYPTO`` for coin-margined inverse contracts (size in USD contracts), because
    their volumes are not comparable.
    """
    t = ticker.upper()
    if asset_class in ("equity", "option", "indexoption"):
        return f"{t}:US"
    if asset_class == "forex":
        return f"{t}:FX"
    if asset_class in ("crypto", "cryptofuture"):
        for quote in USD_LIKE:
            if t.endswith(quote) and len(t) > len(quote):
                base = t[: -len(quote)]
                if asset_class == "crypto":
                    return f"{base}USD:CRYPTO"
                return f"{base}USD-{'INVPERP' if quote == 'USD' else 'PERP'}:CRYPTO"
        suffix = "-PERP" if asset_class == "cryptofuture" else ""
        return f"{t}{suffix}:CRYPTO"
    raise SourceError(f"no symbol mapping for LEAN asset class {asset_class!r}")


def _day(text: str, path: Path) -> date:
    try:
        return datetime.strptime(text, "%Y%m%d").date()
    except ValueError:
        raise SourceError(f"{path}: file name date {text!r} is not YYYYMMDD") from None


def describe(path: Path, root: Path) -> LeanFile:
    """Read a file's asset class, market, resolution, kind, ticker and date from its path under ``root``."""
    try:
        parts = path.relative_to(root).parts
    except ValueError:
        raise SourceError(f"{path}: not under the LEAN root {root}") from None
    bad = SourceError(
        f"{path}: not a LEAN market-data path this adapter reads "
        "(<asset>/<market>/<resolution>/<ticker>/<YYYYMMDD>_<trade|quote>.zip, "
        "<asset>/<market>/<hour|daily>/<ticker>[_<kind>].zip or "
        "<option|indexoption>/usa/universes/<ticker>/<YYYYMMDD>.csv)"
    )
    if len(parts) < 4 or parts[0] not in ASSET_CLASSES:
        raise bad
    asset, market, resolution = parts[0], parts[1], parts[2]
    name = parts[-1]
    if asset in ("option", "indexoption"):
        m = _UNIVERSE_FILE.match(name)
        if resolution != "universes" or len(parts) != 5 or not m:
            raise bad
        return LeanFile(path, asset, market, "daily", "universe", parts[3], _day(m.group(1), path))
    if resolution not in RESOLUTIONS:
        raise bad
    if resolution in INTRADAY:
        m = _DAY_FILE.match(name)
        if len(parts) != 5 or not m:
            raise bad
        return LeanFile(path, asset, market, resolution, m.group(2), parts[3], _day(m.group(1), path))
    m = _WHOLE_FILE.match(name)
    if len(parts) != 4 or not m:
        raise bad
    kind = m.group(2) or ("quote" if asset == "forex" else "trade")
    return LeanFile(path, asset, market, resolution, kind, m.group(1))


def _candidates(root: Path, asset_classes: tuple[str, ...]) -> Iterator[Path]:
    for asset in asset_classes:
        base = root / asset
        if not base.is_dir():
            continue
        pattern = "*/universes/*/*.csv" if asset in ("option", "indexoption") else "*/*/**/*.zip"
        yield from base.glob(pattern)


def discover(
    root: Path,
    *,
    asset_classes: tuple[str, ...] = ASSET_CLASSES,
    resolutions: tuple[str, ...] = RESOLUTIONS,
    kinds: tuple[str, ...] = KINDS,
    tickers: tuple[str, ...] = (),
    markets: tuple[str, ...] = (),
    start: date | None = None,
    end: date | None = None,
) -> list[LeanFile]:
    """List the market-data files under ``root`` that the filters select, in a stable order.

    ``tickers`` match the LEAN ticker ("aapl", "eurusd", "btcusdt") or the mapped symbol id
    ("AAPL:US"), case-insensitively. ``start``/``end`` select day files by their date (inclusive);
    whole-history files (hour, daily) are always listed and filtered by row later. Paths the adapter
    does not read (factor/map files, futures, option minute files) are skipped silently.
    """
    wanted = {t.lower() for t in tickers}
    out: list[LeanFile] = []
    for path in _candidates(root, asset_classes):
        try:
            f = describe(path, root)
        except SourceError:
            continue
        if f.resolution not in resolutions or f.kind not in kinds:
            continue
        if markets and f.market not in markets:
            continue
        if wanted and f.ticker.lower() not in wanted and f.symbol_id.lower() not in wanted:
            continue
        if f.day is not None and ((start and f.day < start) or (end and f.day > end)):
            continue
        out.append(f)
    return sorted(out, key=lambda f: (f.asset_class, f.market, f.resolution, f.ticker, f.kind, f.day or date.min))
