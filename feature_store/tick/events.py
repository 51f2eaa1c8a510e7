"""Trades and quotes of one source, placed in their exchange sessions, in the order both paths see them.

The batch path and the streaming featurizer must see the same events in the same order:
- one source (vendor) at a time; bronze rows of several sources are refused;
- an event belongs to the calendar session with ``open <= ts <= close``; others are dropped;
- the second of an event is the end of the 1 s step holding it (``ceil(ts / 1 s)``);
- order is (ts, quotes before trades, seq): a trade sees every quote stamped at or before it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import polars as pl

from core.errors import TableError
from core.timetypes import NS_PER_S
from lakehouse import calendars
from lakehouse.schema import PL_TS as TS

TRADE_COLUMNS = ("symbol_id", "ts", "price", "size", "seq")
QUOTE_COLUMNS = ("symbol_id", "ts", "bid", "bid_size", "ask", "ask_size", "exchange", "seq")
SERIES = ("symbol_id", "open")
DEFAULT_CALENDAR = "XNYS"


def second_end_ns(ts_ns: int) -> int:
    """End of the 1 s step holding ``ts_ns`` (steps cover ``(end - 1 s, end]``)."""
    return -(-ts_ns // NS_PER_S) * NS_PER_S


def second_expr(ts: pl.Expr) -> pl.Expr:
    """``second_end_ns`` as a polars expression over a UTC ns timestamp column (result: int64 ns)."""
    ns = ts.cast(TS).dt.epoch("ns")
    return ((ns - 1) // NS_PER_S + 1) * NS_PER_S


def one_source(frame: pl.DataFrame, what: str) -> pl.DataFrame:
    """Refuse frames mixing vendors: tick features are computed per source."""
    if "source" in frame.columns and frame["source"].n_unique() > 1:
        raise TableError(f"{what}: rows of several sources {sorted(frame['source'].unique())}; pass one source")
    return frame


def session_table(symbols: list[str], calendar_of: Mapping[str, str] | str, lo: datetime, hi: datetime) -> pl.DataFrame:
    """Sessions overlapping ``[lo, hi]`` per symbol: symbol_id, open, close (int64 ns)."""
    cal = (lambda s: calendar_of) if isinstance(calendar_of, str) else (lambda s: calendar_of.get(s, DEFAULT_CALENDAR))
    frames = []
    for name in sorted({cal(s) for s in symbols}):
        sess = calendars.sessions(name, lo, hi).select(pl.col("open").dt.epoch("ns"), pl.col("close").dt.epoch("ns"))
        mine = pl.DataFrame({"symbol_id": [s for s in symbols if cal(s) == name]})
        frames.append(mine.join(sess, how="cross"))
    schema = {"symbol_id": pl.String, "open": pl.Int64, "close": pl.Int64}
    return pl.concat(frames).sort("open") if frames else pl.DataFrame(schema=schema)


def in_sessions(events: pl.DataFrame, sessions: pl.DataFrame) -> pl.DataFrame:
    """Keep events inside a session; add ``t`` (int64 ns), ``sec`` (second end), ``open`` and ``close``."""
    ev = events.with_columns(pl.col("ts").cast(TS).dt.epoch("ns").alias("t")).sort("t", "seq")
    ev = ev.with_columns(pl.col("t").set_sorted())
    ev = ev.join_asof(
        sessions, left_on="t", right_on="open", by="symbol_id", strategy="backward", check_sortedness=False
    )
    return ev.filter(pl.col("t") <= pl.col("close")).with_columns(second_expr(pl.col("ts")).alias("sec"))


def nbbo(quotes: pl.DataFrame) -> pl.DataFrame:
    """The top of book after each quote event: each side as its latest update this session.

    Bronze quotes are updates of the consolidated best bid/offer (AlgoSeek's NBBO feed in LEAN: a
    row carries the side(s) that changed and names the venue at the best), so a side is carried
    until it is updated again; ``quotes`` are session events (``in_sessions``) sorted by (t, seq).
    ``valid`` = both sides present and not crossed.
    """
    q = quotes.sort("t", "seq")
    cols = []
    for side in ("bid", "ask"):
        has = pl.col(side).is_not_null()
        cols.append(pl.when(has).then(pl.col(side)).forward_fill().over(SERIES).alias(side))
        size = pl.when(has).then(pl.col(f"{side}_size").fill_null(0.0)).forward_fill().over(SERIES)
        cols.append(size.alias(f"{side}_size"))
    q = q.with_columns(cols)
    valid = (pl.col("bid").is_not_null() & pl.col("ask").is_not_null() & (pl.col("bid") <= pl.col("ask"))).fill_null(
        False
    )
    return q.select(
        "symbol_id", "open", "close", "t", "sec", "bid", "bid_size", "ask", "ask_size", valid.alias("valid")
    )


def ordered_events(trades: pl.DataFrame, quotes: pl.DataFrame | None) -> pl.DataFrame:
    """Trades and quotes in one frame, in the order both paths process them (for replay).

    Columns: kind ("quote"/"trade"), symbol_id, t, price, size, bid, bid_size, ask, ask_size, exchange, seq.
    """
    t = one_source(trades, "trades").select(
        pl.lit("trade").alias("kind"),
        "symbol_id",
        pl.col("ts").cast(TS).dt.epoch("ns").alias("t"),
        pl.col("price").cast(pl.Float64),
        pl.col("size").cast(pl.Float64),
        *(pl.lit(None, pl.Float64).alias(c) for c in ("bid", "bid_size", "ask", "ask_size")),
        (pl.col("exchange") if "exchange" in trades.columns else pl.lit(None)).cast(pl.String).alias("exchange"),
        pl.col("seq").cast(pl.Int64),
    )
    frames = [t]
    if quotes is not None and quotes.height:
        frames.append(
            one_source(quotes, "quotes").select(
                pl.lit("quote").alias("kind"),
                "symbol_id",
                pl.col("ts").cast(TS).dt.epoch("ns").alias("t"),
                *(pl.lit(None, pl.Float64).alias(c) for c in ("price", "size")),
                *(pl.col(c).cast(pl.Float64) for c in ("bid", "bid_size", "ask", "ask_size")),
                pl.col("exchange").cast(pl.String),
                pl.col("seq").cast(pl.Int64),
            )
        )
    return pl.concat(frames).sort("t", pl.col("kind") == "trade", "seq", maintain_order=True)
