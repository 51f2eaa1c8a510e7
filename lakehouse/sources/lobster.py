"""LOBSTER message + orderbook file pairs -> bronze.book_events and bronze.trades.

A LOBSTER delivery is two line-aligned CSV files per ticker and day,
``{TICKER}_{YYYY-MM-DD}_{start}_{end}_message_{N}.csv`` and ``..._orderbook_{N}.csv``. Row i of the
orderbook file is the level-N book right after event i of the message file, so the two must have
the same number of rows; a pair that does not fails as a whole, naming both files.

Message columns: time (seconds after midnight, America/New_York, with up to 9 decimals), event type,
order id, size, price x 10000, direction (+1 buy order, -1 sell order). The trading date comes from
the file name. Event types map to ``action``:

    1 add | 2 cancel (partial) | 3 delete | 4 fill (visible execution) | 5 fill_hidden |
    6 cross | 7 halt / resume_quotes / resume_trading (price -1 / 0 / 1; price stored as null)

``side`` in book_events is the side of the order the event is about (+1 bid, -1 ask). Executions
also go to bronze.trades, where ``side`` is the AGGRESSOR: LOBSTER's direction is the side of the
resting order that was hit, so the aggressor is ``-direction`` (crosses have no aggressor: null).
By default only visible executions (type 4) become trades; ``trade_types`` can add 5 and 6.

A line that cannot be parsed in either file quarantines that one event, with both raw lines.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence
from datetime import date
from pathlib import Path
from typing import Literal, cast

import polars as pl
from pydantic import Field

from core.config import Strict
from core.errors import SourceError
from lakehouse.ingest import Batch, Chunk, Clock, Rejected
from lakehouse.sources.lobster_parse import parse_pair
from lakehouse.sources.tabular_files import batch_id_or_fallback, expand_paths
from lakehouse.tables import BRONZE_BOOK_EVENTS, BRONZE_TRADES

SOURCE = "lobster"
NAME = re.compile(
    r"^(?P<ticker>[A-Za-z0-9.\-]+)_(?P<date>\d{4}-\d{2}-\d{2})_(?P<start>\d+)_(?P<end>\d+)"
    r"_message_(?P<levels>\d+)\.csv$"
)


log = logging.getLogger(__name__)


class Params(Strict):
    """Where the message files are and how to name what they hold."""

    paths: list[str] = Field(min_length=1, description="message files, directories or glob patterns")
    symbol_template: str = Field("{ticker}:US", description="symbol_id from the file name's ticker")
    tz: str = "America/New_York"
    exchange: str | None = "XNAS"
    trade_types: list[Literal[4, 5, 6]] = Field(
        default_factory=lambda: [cast(Literal[4, 5, 6], 4)], description="event types written to bronze.trades"
    )


def message_files(paths: list[str]) -> list[Path]:
    """Expand files, directories and globs to the LOBSTER message files they name."""
    return [p for p in expand_paths(paths, "*_message_*.csv") if "_message_" in p.name or not p.exists()]


def orderbook_file(message: Path) -> Path:
    """The orderbook file paired with a message file."""
    return message.with_name(message.name.replace("_message_", "_orderbook_"))


def batches(params: Params, clock: Clock) -> Iterator[Batch]:
    """Yield one batch per message/orderbook pair (id = hash of both files)."""
    for msg in message_files(params.paths):
        pair = orderbook_file(msg)
        book: Path | None = pair if pair.exists() else None
        if book is None:  # events and trades still land; the book column stays empty
            log.warning("%s: no orderbook file %s; ingesting events and trades with empty book columns", msg, pair.name)
        extra = batch_id_or_fallback(SOURCE, book) if book is not None else "no-orderbook"
        batch_id = batch_id_or_fallback(SOURCE, msg, extra=extra)
        yield Batch(SOURCE, str(msg), batch_id, _chunks(params, msg, book), table_hint=BRONZE_BOOK_EVENTS.qualified)


def _chunks(params: Params, msg: Path, book: Path | None) -> Iterator[Chunk]:
    m = NAME.match(msg.name)
    if m is None:
        raise SourceError(f"{msg}: not a LOBSTER message file name (TICKER_YYYY-MM-DD_start_end_message_N.csv)")
    symbol_id = params.symbol_template.format(ticker=m["ticker"])
    day = date.fromisoformat(m["date"])
    events, rejected = parse_pair(msg, book, int(m["levels"]), day, params.tz)
    events = events.with_columns(pl.lit(symbol_id).alias("symbol_id"))
    yield Chunk(BRONZE_BOOK_EVENTS, book_events(events), [Rejected(r, raw, why) for r, raw, why in rejected])
    yield Chunk(BRONZE_TRADES, trades(events, params.trade_types, params.exchange))


ACTIONS = {1: "add", 2: "cancel", 3: "delete", 4: "fill", 5: "fill_hidden", 6: "cross"}
HALTS = {-1: "halt", 0: "resume_quotes", 1: "resume_trading"}


def _seq() -> pl.Expr:
    return pl.int_range(pl.len()).over("symbol_id", "ts").cast(pl.Int64)


def book_events(events: pl.DataFrame) -> pl.DataFrame:
    """Map parsed LOBSTER events to bronze.book_events rows (plus ``_row`` and ``_raw``)."""
    halt = pl.col("type") == 7
    action = (
        pl.when(halt)
        .then(pl.col("price_int").replace_strict(HALTS, default="halt"))
        .otherwise(pl.col("type").replace_strict(ACTIONS, default=None, return_dtype=pl.String))
    )
    return events.select(
        "ts",
        "symbol_id",
        action.alias("action"),
        pl.col("direction").cast(pl.Int8).alias("side"),
        pl.when(halt).then(None).otherwise((pl.col("price_int") / 10_000).round(4)).alias("price"),
        pl.col("size").cast(pl.Float64),
        pl.col("order_id"),
        pl.lit(None, pl.Int16).alias("level"),
        pl.col("book"),
        _seq().alias("seq"),
        "_row",
        "_raw",
    )


def trades(events: pl.DataFrame, trade_types: Sequence[int], exchange: str | None) -> pl.DataFrame:
    """Executions as bronze.trades rows; side is the aggressor (-direction), null for crosses."""
    ex = events.filter(pl.col("type").is_in(list(trade_types)))
    return ex.select(
        "ts",
        "symbol_id",
        (pl.col("price_int") / 10_000).round(4).alias("price"),
        pl.col("size").cast(pl.Float64),
        pl.when(pl.col("type") == 6).then(None).otherwise(-pl.col("direction")).cast(pl.Int8).alias("side"),
        pl.lit(exchange, pl.String).alias("exchange"),
        pl.col("type").replace_strict({4: None, 5: "hidden", 6: "cross"}, return_dtype=pl.String).alias("conditions"),
        _seq().alias("seq"),
        "_row",
        "_raw",
    )
