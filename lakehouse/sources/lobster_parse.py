"""Parse one LOBSTER message/orderbook pair into typed events (vectorised, line by line checked).

Returns the events that parse and, separately, ``(row, raw, reason)`` for the lines that do not.
Row counts of the two files must match (they are line-aligned); otherwise the pair fails.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import polars as pl

from core.errors import SourceError

# LOBSTER marks empty book levels with these dummy prices (size 0).
EMPTY_ASK = 9_999_999_999
EMPTY_BID = -9_999_999_999
TIME = r"^(\d{1,5})(?:\.(\d{1,9}))?$"


def read_lines(path: Path) -> list[str]:
    """The file's lines (split on LF only, CR stripped); the error names the file when it cannot be read."""
    try:
        return split_lines(path.read_bytes().decode("utf-8", errors="replace"))
    except OSError as exc:
        raise SourceError(f"{path}: cannot read: {exc.strerror or exc}") from exc


def split_lines(text: str) -> list[str]:
    """Split on "\n" only (CSV readers do; ``str.splitlines`` also splits on form feeds and more)."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [ln[:-1] if ln.endswith("\r") else ln for ln in lines]


def _int(parts: str, i: int) -> pl.Expr:
    return pl.col(parts).list.get(i, null_on_oob=True).str.strip_chars().cast(pl.Int64, strict=False)


def _first_reason(checks: list[tuple[pl.Expr, pl.Expr | str]]) -> pl.Expr:
    return pl.coalesce([pl.when(bad).then(pl.lit(why) if isinstance(why, str) else why) for bad, why in checks])


def parse_pair(
    message: Path, orderbook: Path | None, levels: int, day: date, tz: str
) -> tuple[pl.DataFrame, list[tuple[int, str, str]]]:
    """Parse a line-aligned pair; return (events, rejected lines as (row, raw, reason)).

    Without an orderbook file (``None``) the events are parsed alone and their book is null.
    """
    msg_lines = read_lines(message)
    has_book = orderbook is not None
    book_lines = read_lines(orderbook) if orderbook is not None else [",".join(["0"] * 4 * levels)] * len(msg_lines)
    if len(msg_lines) != len(book_lines):
        raise SourceError(
            f"{message} has {len(msg_lines):,} rows but {orderbook} has {len(book_lines):,}: "
            "LOBSTER message and orderbook files must be line-aligned"
        )
    df = pl.DataFrame({"m": msg_lines, "b": book_lines}, schema={"m": pl.String, "b": pl.String})
    df = df.with_row_index("_row", offset=1).with_columns(
        pl.col("_row").cast(pl.Int64),
        pl.col("m").str.split(",").alias("mp"),
        pl.col("b").str.split(",").alias("bp"),
    )
    time = pl.col("mp").list.get(0, null_on_oob=True).str.strip_chars()
    df = df.with_columns(
        time.str.extract(TIME, 1).cast(pl.Int64).alias("secs"),
        time.str.extract(TIME, 2).str.pad_end(9, "0").cast(pl.Int64).fill_null(0).alias("frac"),
        time.alias("time_text"),
        _int("mp", 1).alias("type"),
        _int("mp", 2).alias("order_id"),
        _int("mp", 3).alias("size"),
        _int("mp", 4).alias("price_int"),
        _int("mp", 5).alias("direction"),
        pl.col("bp").list.eval(pl.element().str.strip_chars().cast(pl.Int64, strict=False)).alias("bk"),
    )
    n_book = 4 * levels
    m, b = message.name, orderbook.name if orderbook is not None else "(no orderbook file)"
    reason = _first_reason(
        [
            (pl.col("mp").list.len() != 6, pl.format(f"{m}: expected 6 fields, got {{}}", pl.col("mp").list.len())),
            (
                pl.col("secs").is_null(),
                pl.format(f"{m}: time '{{}}' is not seconds after midnight", pl.col("time_text")),
            ),
            (pl.col("secs") >= 86_400 * 2, f"{m}: time is beyond the trading day"),
            (pl.col("type").is_null() | ~pl.col("type").is_between(1, 7), f"{m}: event type is not an integer in 1..7"),
            (pl.col("order_id").is_null(), f"{m}: order id is not an integer"),
            (pl.col("size").is_null(), f"{m}: size is not an integer"),
            (pl.col("price_int").is_null(), f"{m}: price is not an integer"),
            (~pl.col("direction").is_in([-1, 1]).fill_null(False), f"{m}: direction is not -1 or 1"),
            (
                pl.col("bp").list.len() != n_book,
                pl.format(f"{b}: expected {n_book} fields, got {{}}", pl.col("bp").list.len()),
            ),
            (pl.col("bk").list.eval(pl.element().is_null()).list.any(), f"{b}: a price or size is not an integer"),
        ]
    )
    raw = pl.format("message: {} | orderbook: {}", "m", "b") if has_book else pl.format("message: {}", "m")
    df = df.with_columns(reason.alias("_reason"), raw.alias("_raw"))
    bad = df.filter(pl.col("_reason").is_not_null())
    good = df.filter(pl.col("_reason").is_null())
    midnight = datetime(day.year, day.month, day.day)
    events = good.select(
        (pl.lit(midnight).cast(pl.Datetime("ns")) + pl.duration(seconds=pl.col("secs"), nanoseconds=pl.col("frac")))
        .dt.replace_time_zone(tz, ambiguous="earliest", non_existent="null")
        .dt.convert_time_zone("UTC")
        .alias("ts"),
        "type",
        "order_id",
        "size",
        "price_int",
        "direction",
        (book_json("bk", levels) if has_book else pl.lit(None, pl.String)).alias("book"),
        "_row",
        "_raw",
    )
    return events, [(r, raw, why) for r, raw, why in bad.select("_row", "_raw", "_reason").iter_rows()]


def book_json(column: str, levels: int) -> pl.Expr:
    """JSON of the level-N book: {"ask_px": [...], "ask_sz": [...], "bid_px": [...], "bid_sz": [...]}.

    Prices are in dollars; empty levels (LOBSTER's dummy prices, size 0) are null in price and size.
    """
    bk = pl.col(column)
    lists: dict[str, pl.Expr] = {}
    for name, offset, empty in (("ask", 0, EMPTY_ASK), ("bid", 2, EMPTY_BID)):
        px, sz = [], []
        for level in range(levels):
            p = bk.list.get(4 * level + offset)
            present = p != empty
            px.append(pl.when(present).then((p / 10_000).round(4)))
            sz.append(pl.when(present).then(bk.list.get(4 * level + offset + 1)))
        lists[f"{name}_px"], lists[f"{name}_sz"] = pl.concat_list(px), pl.concat_list(sz)
    return pl.struct([e.alias(n) for n, e in lists.items()]).struct.json_encode()
