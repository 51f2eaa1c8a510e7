"""Pure parsers for LEAN reference files: factor files, map files, per-contract futures CSVs.

Every function takes the file's text and returns typed frames plus the lines it could not parse
(``Rejected`` with the line number, raw text and the field at fault), so that for every file
``non-blank lines = parsed rows + rejected``. Parsing is vectorised: the lines become one string
column that is split and cast in polars.

Time conventions (checked against the data, see ``lean_reference``): futures CSVs are in UTC
(LEAN's data time zone for CME/COMEX futures); daily/hour rows are stamped at the bar START and
minute rows in milliseconds since the file date's midnight. Here every bar is re-stamped at its
END (start + bar length). Open interest is a point observation: minute rows keep their time, and a
daily row (the day's last observation) is stamped at the END of its day, the earliest instant the
daily file can claim to know it.
"""

from __future__ import annotations

from datetime import date

import polars as pl

from lakehouse.ingest import Rejected
from lakehouse.schema import PL_TS as TS_NS

TF_LENGTH = {"1m": "1m", "1h": "1h", "1d": "1d"}


def _lines(text: str) -> pl.DataFrame:
    """Non-blank lines with their 1-based line numbers as ``_row`` and text as ``_raw``."""
    lines = pl.Series("_raw", text.splitlines(), dtype=pl.String)
    frame = (
        pl.DataFrame({"_raw": lines})
        .with_row_index("_row", offset=1)
        .with_columns(pl.col("_row").cast(pl.Int64), pl.col("_raw").str.strip_chars())
    )
    return frame.filter(pl.col("_raw") != "")


def _split(frame: pl.DataFrame, names: list[str], min_fields: int | None = None) -> pl.DataFrame:
    """Split ``_raw`` on commas into string columns ``names``; add ``_reason`` for a wrong count."""
    n = len(names)
    lo = n if min_fields is None else min_fields
    parts = pl.col("_raw").str.split(",")
    out = frame.with_columns(parts.list.len().alias("_n"))
    out = out.with_columns(
        [parts.list.get(i, null_on_oob=True).str.strip_chars().alias(c) for i, c in enumerate(names)]
    )
    return out.with_columns(
        pl.when((pl.col("_n") < lo) | (pl.col("_n") > n))
        .then(pl.format("expected {} fields, got {}", pl.lit(f"{lo}..{n}" if lo != n else str(n)), pl.col("_n")))
        .alias("_reason")
    ).drop("_n")


def _check(frame: pl.DataFrame, checks: list[tuple[str, pl.Expr]]) -> pl.DataFrame:
    """Fill ``_reason`` with the first failing check (name, failing-condition) not already set."""
    exprs = [pl.col("_reason")] + [pl.when(cond).then(pl.lit(reason)) for reason, cond in checks]
    return frame.with_columns(pl.coalesce(exprs).alias("_reason"))


def _finish(frame: pl.DataFrame, file: str, keep: list[str]) -> tuple[pl.DataFrame, list[Rejected]]:
    bad = frame.filter(pl.col("_reason").is_not_null())
    rejected = [
        Rejected(r, raw, f"{file} row {r}: {reason}")
        for r, raw, reason in bad.select("_row", "_raw", "_reason").iter_rows()
    ]
    return frame.filter(pl.col("_reason").is_null()).select(keep), rejected


def _date(col: str) -> pl.Expr:
    return pl.col(col).str.strptime(pl.Date, "%Y%m%d", strict=False)


def _num(col: str) -> pl.Expr:
    return pl.col(col).cast(pl.Float64, strict=False)


def _bad_number(col: str, *, positive: bool = False, allow_empty: bool = False) -> pl.Expr:
    x = pl.col(f"{col}_f")
    bad = x.is_null() | x.is_nan() | x.is_infinite() | (x <= 0 if positive else x < 0)
    return bad & ~(pl.col(col).fill_null("") == "") if allow_empty else bad


# ---- equities -------------------------------------------------------------------------------------
def parse_factor_rows(text: str, file: str) -> tuple[pl.DataFrame, list[Rejected]]:
    """Parse ``date,price_factor,split_factor[,reference_price]`` lines.

    A row is rejected when its date is not YYYYMMDD, a factor is not a finite number > 0 (LEAN
    itself drops zero, ``inf`` and exponent rows), the reference price is negative, or its date is
    not after the previous row's (the file must be strictly ascending).
    """
    f = _split(_lines(text), ["d", "pf", "sf", "ref"], min_fields=3)
    f = f.with_columns(
        _date("d").alias("date"),
        _num("pf").alias("pf_f"),
        _num("sf").alias("sf_f"),
        pl.when(pl.col("ref").fill_null("") == "").then(0.0).otherwise(_num("ref")).alias("ref_f"),
    )
    f = _check(
        f,
        [
            ("date is not YYYYMMDD", pl.col("date").is_null()),
            ("price factor is not a number > 0", _bad_number("pf", positive=True)),
            ("split factor is not a number > 0", _bad_number("sf", positive=True)),
            ("reference price is not a number >= 0", _bad_number("ref")),
        ],
    )
    ok = f.filter(pl.col("_reason").is_null())
    # Ascending order among the parsed rows: a date not after the running maximum is out of order.
    order = ok.select("_row", (pl.col("date") <= pl.col("date").cum_max().shift(1)).fill_null(False).alias("_back"))
    f = f.join(order, on="_row", how="left").with_columns(
        pl.when(pl.col("_reason").is_null() & pl.col("_back").fill_null(False))
        .then(pl.lit("date is not after the previous row's (file must ascend)"))
        .otherwise(pl.col("_reason"))
        .alias("_reason")
    )
    f = f.rename({"pf_f": "price_factor", "sf_f": "split_factor", "ref_f": "reference_price"})
    return _finish(f, file, ["_row", "_raw", "date", "price_factor", "split_factor", "reference_price"])


def parse_map_rows(text: str, file: str) -> tuple[pl.DataFrame, list[Rejected]]:
    """Parse ``date,ticker[,exchange[,...]]`` lines: the ticker in force up to and including date."""
    f = _split(_lines(text), ["d", "ticker", "exchange", "mode"], min_fields=2)
    f = f.with_columns(
        _date("d").alias("date"),
        pl.col("ticker").str.to_uppercase(),
        pl.when(pl.col("exchange").fill_null("") == "").then(None).otherwise(pl.col("exchange")).alias("exchange"),
    )
    f = _check(
        f,
        [
            ("date is not YYYYMMDD", pl.col("date").is_null()),
            ("ticker is empty", pl.col("ticker").fill_null("") == ""),
        ],
    )
    return _finish(f, file, ["_row", "_raw", "date", "ticker", "exchange"])


# ---- futures --------------------------------------------------------------------------------------
def _stamp_expr(tf: str, file_date: date | None) -> pl.Expr:
    """Bar start as UTC datetime: ``YYYYMMDD HH:MM`` for hour/daily, ms-since-midnight for minute."""
    if file_date is None:
        return pl.col("t").str.strptime(pl.Datetime("ns"), "%Y%m%d %H:%M", strict=False).dt.replace_time_zone("UTC")
    ms = pl.col("t").cast(pl.Int64, strict=False)
    base = pl.lit(file_date).cast(pl.Datetime("ns")).dt.replace_time_zone("UTC")
    return pl.when((ms >= 0) & (ms < 86_400_000)).then(base + pl.duration(milliseconds=ms))


def parse_future_trade_bars(
    text: str, file: str, symbol_id: str, tf: str, file_date: date | None = None
) -> tuple[pl.DataFrame, list[Rejected]]:
    """Parse ``time,open,high,low,close,volume`` rows of one contract into bronze.bars rows (ts = END)."""
    f = _split(_lines(text), ["t", "o", "h", "l", "c", "v"])
    f = f.with_columns(
        _stamp_expr(tf, file_date).alias("start"), *[_num(c).alias(f"{c}_f") for c in ("o", "h", "l", "c", "v")]
    )
    f = _check(
        f,
        [
            ("time is not a valid bar start", pl.col("start").is_null()),
            *[
                (f"{name} is not a number > 0", _bad_number(c, positive=True))
                for c, name in (("o", "open"), ("h", "high"), ("l", "low"), ("c", "close"))
            ],
            ("volume is not a number >= 0", _bad_number("v")),
            ("high is below low", pl.col("h_f") < pl.col("l_f")),
        ],
    )
    f = f.with_columns(
        pl.col("start").dt.offset_by(TF_LENGTH[tf]).cast(TS_NS).alias("ts"),
        pl.lit(tf).alias("tf"),
        pl.lit(symbol_id).alias("symbol_id"),
        pl.lit("trade").alias("kind"),
        pl.col("o_f").alias("open"),
        pl.col("h_f").alias("high"),
        pl.col("l_f").alias("low"),
        pl.col("c_f").alias("close"),
        pl.col("v_f").alias("volume"),
        pl.lit(None, pl.Float64).alias("vwap"),
        pl.lit(None, pl.Int64).alias("n_trades"),
    )
    return _finish(
        f,
        file,
        ["_row", "_raw", "ts", "tf", "symbol_id", "kind", "open", "high", "low", "close", "volume", "vwap", "n_trades"],
    )


def parse_future_quote_bars(
    text: str, file: str, symbol_id: str, tf: str, file_date: date | None = None
) -> tuple[pl.DataFrame, list[Rejected]]:
    """Parse ``time,bidOHLC,bidSize,askOHLC,askSize`` rows into bid and ask bars (a missing side is no bar)."""
    names = ["t", "bo", "bh", "bl", "bc", "bs", "ao", "ah", "al", "ac", "as"]
    f = _split(_lines(text), names)
    f = f.with_columns(_stamp_expr(tf, file_date).alias("start"), *[_num(c).alias(f"{c}_f") for c in names[1:]])
    side_checks = []
    for s, side in (("b", "bid"), ("a", "ask")):
        for c, name in (("o", "open"), ("h", "high"), ("l", "low"), ("c", "close")):
            side_checks.append(
                (f"{side} {name} is not a number > 0", _bad_number(f"{s}{c}", positive=True, allow_empty=True))
            )
    f = _check(f, [("time is not a valid bar start", pl.col("start").is_null()), *side_checks])
    good, rejected = _finish(f, file, ["_row", "_raw", "start", *[f"{c}_f" for c in names[1:]]])
    sides = []
    for s, side in (("b", "bid"), ("a", "ask")):
        part = good.filter(pl.all_horizontal([pl.col(f"{s}{c}_f").is_not_null() for c in "ohlc"])).select(
            "_row",
            "_raw",
            pl.col("start").dt.offset_by(TF_LENGTH[tf]).cast(TS_NS).alias("ts"),
            pl.lit(tf).alias("tf"),
            pl.lit(symbol_id).alias("symbol_id"),
            pl.lit(side).alias("kind"),
            pl.col(f"{s}o_f").alias("open"),
            pl.col(f"{s}h_f").alias("high"),
            pl.col(f"{s}l_f").alias("low"),
            pl.col(f"{s}c_f").alias("close"),
            pl.lit(None, pl.Float64).alias("volume"),
            pl.lit(None, pl.Float64).alias("vwap"),
            pl.lit(None, pl.Int64).alias("n_trades"),
        )
        sides.append(part)
    return pl.concat(sides), rejected


def parse_open_interest(
    text: str, file: str, symbol_id: str, tf: str, file_date: date | None = None
) -> tuple[pl.DataFrame, list[Rejected]]:
    """Parse ``time,open_interest`` rows; daily rows are stamped at the end of their day."""
    f = _split(_lines(text), ["t", "oi"])
    f = f.with_columns(_stamp_expr(tf, file_date).alias("start"), _num("oi").alias("oi_f"))
    f = _check(
        f, [("time is not valid", pl.col("start").is_null()), ("open interest is not a number >= 0", _bad_number("oi"))]
    )
    ts = pl.col("start").dt.offset_by("1d") if tf == "1d" else pl.col("start")
    f = f.with_columns(
        ts.cast(TS_NS).alias("ts"), pl.lit(symbol_id).alias("symbol_id"), pl.col("oi_f").alias("open_interest")
    )
    return _finish(f, file, ["_row", "_raw", "ts", "symbol_id", "open_interest"])
