"""Market-data messages on ``md.trades.<symbol>`` / ``md.quotes.<symbol>`` (stream MARKET_DATA).

One JSON object per event, the bronze row's own fields (UTC ns integers for ``ts``)::

    trade: {"symbol_id": "BAC:US", "ts": 1381152601123000000, "price": 13.9, "size": 100.0, "seq": 0}
    quote: {"symbol_id": "BAC:US", "ts": ..., "bid": 13.89, "bid_size": 500.0, "ask": null, "ask_size": null, "seq": 1}

A quote side given as null is unchanged (bronze quotes are updates of the consolidated top of book).
Subjects and stream names come from the streaming contract (contracts/streaming.json).
"""

from __future__ import annotations

from collections.abc import Iterator

import orjson
import polars as pl

from core.errors import ContractError
from feature_store.contract import STREAMING

TRADE, QUOTE = "trades", "quotes"
MD_STREAM = STREAMING.stream_of(TRADE)
FEATURES_STREAM = STREAMING.stream_of("features")


def md_subject(kind: str, symbol_id: str) -> str:
    """``md.trades.<symbol>`` or ``md.quotes.<symbol>``."""
    return STREAMING.subject(kind, symbol=symbol_id)


def md_patterns() -> list[str]:
    """Subject filters a featurizer subscribes to (``md.trades.>``, ``md.quotes.>``)."""
    return [STREAMING.pattern(TRADE), STREAMING.pattern(QUOTE)]


def md_wildcard() -> str:
    """One subject filter covering trades and quotes (one subscription keeps their relative order)."""
    heads = [STREAMING.prefix(k).split(".") for k in (TRADE, QUOTE)]
    common = []
    for a, b in zip(*heads, strict=False):
        if a != b:
            break
        common.append(a)
    return ".".join([*common, ">"])


def kind_of(subject: str) -> str:
    """TRADE or QUOTE from a market-data subject (ContractError for anything else)."""
    if subject.startswith(STREAMING.prefix(TRADE) + "."):
        return TRADE
    if subject.startswith(STREAMING.prefix(QUOTE) + "."):
        return QUOTE
    raise ContractError(f"{subject!r} is not a market-data subject ({md_patterns()})")


def encode_trade(symbol_id: str, ts: int, price: float, size: float, seq: int) -> bytes:
    """One trade as wire JSON."""
    return orjson.dumps({"symbol_id": symbol_id, "ts": ts, "price": price, "size": size, "seq": seq})


def encode_quote(symbol_id: str, ts: int, bid, bid_size, ask, ask_size, seq: int) -> bytes:
    """One top-of-book update as wire JSON (absent sides null)."""
    return orjson.dumps(
        {
            "symbol_id": symbol_id,
            "ts": ts,
            "bid": bid,
            "bid_size": bid_size,
            "ask": ask,
            "ask_size": ask_size,
            "seq": seq,
        }
    )


def decode(payload: bytes, kind: str) -> dict:
    """Parse one market-data message; ContractError names what is wrong."""
    try:
        raw = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise ContractError(f"market data ({kind}) is not JSON: {exc}") from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("symbol_id"), str) or not isinstance(raw.get("ts"), int):
        raise ContractError(f"market data ({kind}) needs symbol_id (string) and ts (integer ns): {payload[:120]!r}")
    if kind == TRADE and not (isinstance(raw.get("price"), int | float) and isinstance(raw.get("size"), int | float)):
        raise ContractError(f"trade {raw['symbol_id']} at {raw['ts']}: price and size must be numbers")
    return raw


def messages(events: pl.DataFrame) -> Iterator[tuple[str, bytes]]:
    """(subject, payload) per event of an ``ordered_events`` frame, in its order."""
    cols = ("kind", "symbol_id", "t", "price", "size", "bid", "bid_size", "ask", "ask_size", "seq")
    for kind, sym, t, price, size, bid, bs, ask, az, seq in events.select(cols).iter_rows():
        if kind == "trade":
            yield md_subject(TRADE, sym), encode_trade(sym, t, price, size, seq)
        else:
            yield md_subject(QUOTE, sym), encode_quote(sym, t, bid, bs, ask, az, seq)
