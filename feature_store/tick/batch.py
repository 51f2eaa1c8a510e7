"""Batch path of ``tick_v2``: bronze trades and quotes of one source in, one row per symbol per second out.

Every formula looks backwards only (carried values, shifts and trailing windows within a session),
so a row never changes when later ticks change. ``known_at`` is the row's ``ts`` (the end of its
second): the earliest instant at which every tick it depends on has happened.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import cast

import polars as pl
from polars._typing import SchemaDict

from core.timetypes import NS_PER_S
from feature_store.registry import FeatureSet
from feature_store.tick.definitions import TICK_V2
from feature_store.tick.events import (
    DEFAULT_CALENDAR,
    SERIES,
    in_sessions,
    nbbo,
    one_source,
    second_expr,
    session_table,
)
from lakehouse.schema import PL_TS as TS

VAR_SNAP = 1e-10  # a variance below VAR_SNAP * (1 + mean^2) is rounding noise of equal values: 0
TRADE_AGGS = ("n_trades", "volume", "s_tick", "s_quote", "n_sized", "log_sum", "log2_sum", "block_vol")
WINDOW_AGGS = (*TRADE_AGGS, "n_quotes", "r2", "nz_r")


def _trade_seconds(trades: pl.DataFrame, book: pl.DataFrame | None, block_size: float) -> pl.DataFrame:
    """Per (symbol, session, second): counts, volume, tick/quote-rule signed volume, log sizes, last price."""
    tr = trades.sort("t", "seq").with_columns(pl.col("t").set_sorted())
    move = pl.col("price").diff().over(SERIES)
    tick = pl.when(move > 0).then(1.0).when(move < 0).then(-1.0).forward_fill().over(SERIES).fill_null(0.0)
    tr = tr.with_columns(tick.alias("tick"))
    if book is not None and book.height:
        last = book.group_by("symbol_id", "open", "t", maintain_order=True).last().sort("t")
        tr = tr.join_asof(
            last.select("symbol_id", "open", pl.col("t").set_sorted(), "bid", "ask", "valid"),
            on="t",
            by=["symbol_id", "open"],
            strategy="backward",
            check_sortedness=False,
        )
        mid = (pl.col("bid") + pl.col("ask")) / 2
        ok = pl.col("valid").fill_null(False)
        sign = pl.when(ok & (pl.col("price") > mid)).then(1.0).when(ok & (pl.col("price") < mid)).then(-1.0)
        tr = tr.with_columns(sign.otherwise(pl.col("tick")).alias("quote"))
    else:
        tr = tr.with_columns(pl.col("tick").alias("quote"))
    size, sized = pl.col("size"), pl.col("size") > 0
    log_size = pl.when(sized).then(size.log()).otherwise(0.0)
    return tr.group_by(*SERIES, "close", "sec", maintain_order=True).agg(
        pl.len().cast(pl.Float64).alias("n_trades"),
        size.sum().alias("volume"),
        (pl.col("tick") * size).sum().alias("s_tick"),
        (pl.col("quote") * size).sum().alias("s_quote"),
        sized.sum().cast(pl.Float64).alias("n_sized"),
        log_size.sum().alias("log_sum"),
        (log_size * log_size).sum().alias("log2_sum"),
        pl.when(size >= block_size).then(size).otherwise(0.0).sum().alias("block_vol"),
        pl.col("price").last().alias("price"),
    )


def _grid(trade_secs: pl.DataFrame, until_ns: int) -> pl.DataFrame:
    """Every second of each (symbol, session) from its first trade to min(close, ``until_ns``)."""
    spans = trade_secs.group_by(*SERIES, "close").agg(pl.col("sec").min().alias("first"))
    spans = spans.with_columns(pl.min_horizontal("close", pl.lit(until_ns)).alias("last"))
    spans = spans.filter(pl.col("last") >= pl.col("first"))
    secs = pl.int_ranges(pl.col("first"), pl.col("last") + 1, NS_PER_S, dtype=pl.Int64).alias("sec")
    return spans.select(*SERIES, "close", secs).explode("sec").sort(*SERIES, "sec")


def _with_book(grid: pl.DataFrame, book: pl.DataFrame | None) -> pl.DataFrame:
    """Attach the NBBO at each second's end and the number of quote updates in the second."""
    if book is None or book.height == 0:
        return grid.with_columns(
            *(pl.lit(None, pl.Float64).alias(c) for c in ("bid", "bid_size", "ask", "ask_size")),
            pl.lit(False).alias("valid"),
            pl.lit(0.0).alias("n_quotes"),
        )
    state = book.group_by("symbol_id", "open", "sec", maintain_order=True).agg(
        pl.col("bid", "bid_size", "ask", "ask_size", "valid").last(), pl.len().cast(pl.Float64).alias("n_quotes")
    )
    state = state.sort("sec").with_columns(pl.col("sec").set_sorted())
    g = grid.sort("sec").with_columns(pl.col("sec").set_sorted())
    g = g.join_asof(
        state.drop("n_quotes"), on="sec", by=["symbol_id", "open"], strategy="backward", check_sortedness=False
    )
    g = g.join(state.select("symbol_id", "open", "sec", "n_quotes"), on=["symbol_id", "open", "sec"], how="left")
    return g.with_columns(pl.col("valid").fill_null(False), pl.col("n_quotes").fill_null(0.0)).sort(*SERIES, "sec")


def _feature(kind: str, p: dict) -> pl.Expr:
    """The polars expression of one registry feature ."""

    def ws(agg: str) -> pl.Expr:
        return pl.col(agg).rolling_sum(p["w"], min_samples=1).over(SERIES)

    def ratio(num: pl.Expr, den: pl.Expr) -> pl.Expr:
        return pl.when(den > 0).then(num / den).otherwise(0.0)

    rows = pl.min_horizontal(pl.int_range(1, pl.len() + 1).over(SERIES), pl.lit(p.get("w", 1))).cast(pl.Float64)
    mid = (pl.col("bid") + pl.col("ask")) / 2
    valid = pl.col("valid")
    if kind == "ret":
        lp = pl.col("price").log()
        return lp - lp.shift(p["n"]).over(SERIES).fill_null(lp.first().over(SERIES))
    if kind in ("tick_imb", "quote_imb"):
        return ratio(ws("s_tick" if kind == "tick_imb" else "s_quote"), ws("volume"))
    if kind == "log_size_mean":
        return ratio(ws("log_sum"), ws("n_sized"))
    if kind == "log_size_std":
        mean = ratio(ws("log_sum"), ws("n_sized"))
        var = ratio(ws("log2_sum"), ws("n_sized")) - mean * mean
        return pl.when(var > VAR_SNAP * (1 + mean * mean)).then(var.sqrt()).otherwise(0.0)
    if kind == "block_share":
        return ratio(pl.col("block_vol").rolling_sum(p["w"], min_samples=1).over(SERIES), ws("volume"))
    if kind == "trade_rate":
        return ws("n_trades") / rows
    if kind == "quote_rate":
        return ws("n_quotes") / rows
    if kind == "log_volume":
        return ws("volume").log1p()
    if kind == "spread_bps":
        return pl.when(valid).then(1e4 * (pl.col("ask") - pl.col("bid")) / mid).otherwise(0.0)
    if kind == "microprice_bps":
        depth = pl.col("bid_size") + pl.col("ask_size")
        micro = (pl.col("bid") * pl.col("ask_size") + pl.col("ask") * pl.col("bid_size")) / depth
        return pl.when(valid & (depth > 0)).then(1e4 * (micro / mid - 1.0)).otherwise(0.0)
    if kind == "book_imbalance":
        depth = pl.col("bid_size") + pl.col("ask_size")
        return pl.when(valid & (depth > 0)).then((pl.col("bid_size") - pl.col("ask_size")) / depth).otherwise(0.0)
    if kind == "mid_rv":
        return pl.when(ws("nz_r") > 0).then((ws("r2") / rows * p["year_seconds"]).sqrt()).otherwise(0.0)
    if kind == "secs_since_open":
        return (pl.col("sec") - pl.col("open")) / NS_PER_S
    if kind == "secs_to_close":
        return (pl.col("close") - pl.col("sec")) / NS_PER_S
    raise ValueError(f"unknown tick feature kind {kind!r}")


def tick_features(
    trades: pl.DataFrame,
    quotes: pl.DataFrame | None = None,
    calendar_of: Mapping[str, str] | str = DEFAULT_CALENDAR,
    until_ns: int | None = None,
    feature_set: FeatureSet = TICK_V2,
) -> pl.DataFrame:
    """Compute ``feature_set`` from one source's bronze trades (and quotes): the gold rows.

    ``until_ns`` ends the grid (default: the last second any input event falls in); a session's rows
    never run past its close. Columns: symbol_id, tf, ts, known_at, feature_set, then the features.
    """
    trades = one_source(trades, "trades")
    quotes = one_source(quotes, "quotes") if quotes is not None and quotes.height else None
    names = feature_set.names
    schema: SchemaDict = {"symbol_id": pl.String, "tf": pl.String, "ts": TS, "known_at": TS, "feature_set": pl.String}
    if trades.height == 0:
        return pl.DataFrame(schema={**schema, **dict.fromkeys(names, pl.Float64)})
    every = [trades.select("ts")] + ([quotes.select("ts")] if quotes is not None else [])
    span = pl.concat(every).select(pl.col("ts").cast(TS))["ts"]
    lo, hi = (datetime.fromtimestamp(cast(datetime, v).timestamp(), UTC) for v in (span.min(), span.max()))
    if until_ns is None:
        until_ns = int(pl.select(second_expr(pl.lit(span.max()))).item())
    symbols = sorted(set(trades["symbol_id"]) | (set(quotes["symbol_id"]) if quotes is not None else set()))
    sessions = session_table(symbols, calendar_of, lo, hi)
    tr = in_sessions(trades.select("symbol_id", "ts", "price", "size", "seq"), sessions)
    book = nbbo(in_sessions(quotes, sessions)) if quotes is not None else None
    block = next((f.param["block_size"] for f in feature_set.features if "block_size" in f.param), float("inf"))
    secs = _trade_seconds(tr, book, block)
    grid = _with_book(_grid(secs, until_ns), book)
    g = grid.join(secs.drop("close"), on=["symbol_id", "open", "sec"], how="left")
    g = g.sort(*SERIES, "sec").with_columns(
        pl.col("price").forward_fill().over(SERIES), *(pl.col(c).fill_null(0.0) for c in TRADE_AGGS)
    )
    log_mid = pl.when(pl.col("valid")).then(((pl.col("bid") + pl.col("ask")) / 2).log())
    r = (log_mid - log_mid.shift(1)).over(SERIES).fill_null(0.0)
    g = g.with_columns((r * r).alias("r2"), (r != 0).cast(pl.Float64).alias("nz_r"))
    out = g.select(
        "symbol_id",
        pl.lit(feature_set.tf).alias("tf"),
        pl.col("sec").cast(TS).alias("ts"),
        pl.col("sec").cast(TS).alias("known_at"),
        pl.lit(feature_set.name).alias("feature_set"),
        *(_feature(f.param["kind"], f.param).cast(pl.Float64).alias(f.name) for f in feature_set.features),
    )
    return out.sort("ts", "symbol_id")
