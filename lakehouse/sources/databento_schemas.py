"""Map decoded Databento records (text frames, one per schema) to bronze rows.

Prices are fixed-point integers scaled by 1e-9; ``UNDEF_PRICE`` (i64 max), undefined sizes and
``UNDEF_TIMESTAMP`` (u64 max) become null, so the engine quarantines them where the column is
required. ``ts`` is ``ts_event`` (UTC ns) except for sampled BBO, stamped at the sample time
``ts_recv``, and OHLCV, whose ``ts_event`` is the bar OPEN: bars are re-stamped at their end.

Actions: A add (``snapshot`` when flagged F_SNAPSHOT), C cancel, M modify, R clear, T trade,
F fill, N none. Only T records become trades: on MBO each trade print is one T (side = aggressor)
followed by one F per resting order filled, so writing F too would double-count volume.
"""

from __future__ import annotations

import polars as pl

from lakehouse.sources.databento_decode import U64_MAX, UNDEF_PRICE

F_SNAPSHOT = 1 << 5
UNDEF_SIZE = (1 << 32) - 1
UNDEF_I32 = (1 << 31) - 1
ACTIONS = {"A": "add", "C": "cancel", "M": "modify", "R": "clear", "T": "trade", "F": "fill", "N": "none"}
SIDES = {"B": 1, "A": -1}
BAR_TF = {
    "ohlcv-1s": ("1s", 1_000_000_000),
    "ohlcv-1m": ("1m", 60_000_000_000),
    "ohlcv-1h": ("1h", 3_600_000_000_000),
    "ohlcv-1d": ("1d", 86_400_000_000_000),
}


def ts(name: str) -> pl.Expr:
    """A u64 ns timestamp column as UTC datetime (undefined -> null)."""
    v = pl.col(name).cast(pl.UInt64, strict=False)
    return pl.when(v != U64_MAX).then(v).cast(pl.Int64).cast(pl.Datetime("ns", "UTC"))


def price(name: str) -> pl.Expr:
    """A 1e-9 fixed-point price as float (UNDEF_PRICE -> null)."""
    v = pl.col(name).cast(pl.Int64, strict=False)
    return pl.when(v != UNDEF_PRICE).then((v / 1e9).round(9))


def size(name: str) -> pl.Expr:
    v = pl.col(name).cast(pl.Int64, strict=False)
    return pl.when(v != UNDEF_SIZE).then(v).cast(pl.Float64)


def side() -> pl.Expr:
    return pl.col("side").replace_strict(SIDES, default=None, return_dtype=pl.Int8)


def symbol_id(venue: str) -> pl.Expr:
    return pl.when(pl.col("symbol").str.len_chars() > 0).then(pl.col("symbol") + f":{venue}")


def book_events(df: pl.DataFrame, venue: str) -> pl.DataFrame:
    """MBO or MBP-10 records as bronze.book_events (MBP-10 carries its level and the 10-level book)."""
    snapshot = (pl.col("flags").cast(pl.Int64, strict=False) & F_SNAPSHOT) > 0
    action = (
        pl.when((pl.col("action") == "A") & snapshot)
        .then(pl.lit("snapshot"))
        .otherwise(pl.col("action").replace_strict(ACTIONS, default=None, return_dtype=pl.String))
    )
    mbp = "depth" in df.columns
    return df.select(
        ts("ts_event").alias("ts"),
        symbol_id(venue).alias("symbol_id"),
        action.alias("action"),
        side().alias("side"),
        price("price").alias("price"),
        size("size").alias("size"),
        (pl.lit(None, pl.Int64) if mbp else pl.col("order_id").cast(pl.Int64, strict=False)).alias("order_id"),
        (pl.col("depth").cast(pl.Int16, strict=False) if mbp else pl.lit(None, pl.Int16)).alias("level"),
        (book_json(df) if mbp else pl.lit(None, pl.String)).alias("book"),
        "_row",
        "_raw",
    )


def book_json(df: pl.DataFrame) -> pl.Expr:
    """JSON of an MBP-N record's book, the same shape as LOBSTER's: ask/bid price and size lists."""
    levels = sorted({c[-2:] for c in df.columns if c.startswith("bid_px_")})
    lists = {
        f"{s}_{k}": pl.concat_list([(price if k == "px" else size)(f"{s}_{k}_{lv}") for lv in levels])
        for s in ("ask", "bid")
        for k in ("px", "sz")
    }
    return pl.struct([e.alias(n) for n, e in lists.items()]).struct.json_encode()


def trades(df: pl.DataFrame, venue: str, exchange: str) -> pl.DataFrame:
    """Trade records (action T) as bronze.trades; side is the aggressor, null when not known."""
    return df.filter(pl.col("action") == "T").select(
        ts("ts_event").alias("ts"),
        symbol_id(venue).alias("symbol_id"),
        price("price").alias("price"),
        size("size").alias("size"),
        side().alias("side"),
        pl.lit(exchange).alias("exchange"),
        pl.lit(None, pl.String).alias("conditions"),
        "_row",
        "_raw",
    )


def quotes(df: pl.DataFrame, venue: str, exchange: str, stamp: str = "ts_event") -> pl.DataFrame:
    """Top of book (level 00) as bronze.quotes; a missing side stays null."""
    return df.select(
        ts(stamp).alias("ts"),
        symbol_id(venue).alias("symbol_id"),
        price("bid_px_00").alias("bid"),
        size("bid_sz_00").alias("bid_size"),
        price("ask_px_00").alias("ask"),
        size("ask_sz_00").alias("ask_size"),
        pl.lit(exchange).alias("exchange"),
        "_row",
        "_raw",
    )


def bars(df: pl.DataFrame, venue: str, schema: str) -> pl.DataFrame:
    """OHLCV records as bronze.bars stamped at the bar END (Databento stamps the open)."""
    tf, length = BAR_TF[schema]
    start = pl.col("ts_event").cast(pl.Int64, strict=False)
    return df.select(
        (start + length).cast(pl.Datetime("ns", "UTC")).alias("ts"),
        pl.lit(tf).alias("tf"),
        symbol_id(venue).alias("symbol_id"),
        pl.lit("trade").alias("kind"),
        *(price(c).alias(c) for c in ("open", "high", "low", "close")),
        pl.col("volume").cast(pl.Float64, strict=False).alias("volume"),
        pl.lit(None, pl.Float64).alias("vwap"),
        pl.lit(None, pl.Int64).alias("n_trades"),
        "_row",
        "_raw",
    )


def futures_contracts(df: pl.DataFrame, venue: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Definitions of futures (instrument class F) as bronze.futures_contracts; return (rows, others).

    The multiplier is ``unit_of_measure_qty`` (1e-9 fixed point; e.g. 50 for ES), falling back to
    ``contract_multiplier``; expiry and last trade day are the UTC date of ``expiration``.
    """
    is_future = pl.col("instrument_class") == "F"
    uom = price("unit_of_measure_qty")
    cm = pl.col("contract_multiplier").cast(pl.Int64, strict=False)
    expiry = ts("expiration").dt.date()
    rows = df.filter(is_future).select(
        pl.col("asset").alias("root"),
        (pl.col("raw_symbol") + f":{venue}").alias("contract"),
        expiry.alias("expiry"),
        pl.lit(None, pl.Date).alias("first_notice"),
        expiry.alias("last_trade"),
        pl.coalesce(pl.when(uom > 0).then(uom), pl.when((cm > 0) & (cm != UNDEF_I32)).then(cm.cast(pl.Float64))).alias(
            "multiplier"
        ),
        price("min_price_increment").alias("tick_size"),
        "_row",
        "_raw",
    )
    return rows, df.filter(~is_future)
