"""Corporate actions: derive splits and dividends from vendor factors, and filter them point in time.

LEAN factor files (``date, price_factor, split_factor, reference_price``) hold cumulative factors
that apply to raw prices on dates up to and including each row's date; the row's reference price
is the raw close of that date, the trading day before the factors change. Between consecutive rows
i and i+1 (LEAN ``FactorFileRow.GetSplit``/``GetDividend``):

- a change in split factor is a split, ex-date = the next trading day after row i's date,
  ratio (new shares per old share) = split_factor[i+1] / split_factor[i] (AAPL 2014: 0.25/0.0357143 = 7);
- a change in price factor is a cash dividend with the same ex-date. LEAN builds the factor as
  ``price_factor[i] = price_factor[i+1] * (C - D) / C`` with C = reference close, D = dividend,
  i.e. ``price_factor[i] / price_factor[i+1] = 1 - D / C``, so ``D = C * (1 - pf[i] / pf[i+1])``.

``known_at`` (point in time, chosen conservatively): the close of row i's trading session (the
reference close). The derived dividend depends on that close, so the event cannot be "known" from
the file any earlier, and it is still before any trading on the ex-date (pre-market included), so
bars of the ex-date session are adjusted consistently. Real announcements come weeks earlier; this
choice never leaks an action into a decision made before its ex-date's eve.

Yahoo CSVs give a second, independent derivation: ``Adj Close / Close`` steps at each dividend's
ex-date (Close is already split-adjusted), and raw / Yahoo Close steps at each split's ex-date.
"""

from __future__ import annotations

from datetime import date, datetime
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

import numpy as np
import polars as pl
from polars._typing import SchemaDict

from lakehouse.schema import PL_TS as TS_NS

ACTION_COLUMNS = ["symbol_id", "ex_date", "kind", "ratio", "amount", "price_factor", "split_factor", "known_at"]


@lru_cache(maxsize=4)
def session_table(calendar: str = "XNYS") -> pl.DataFrame:
    """Every session of ``calendar`` (from 1990) with its open and close in UTC."""
    import exchange_calendars as xc

    sched = xc.get_calendar(calendar, start="1990-01-01").schedule
    return pl.DataFrame(
        {
            "session": pl.Series(sched.index.values.astype("datetime64[D]")).cast(pl.Date),
            "open": pl.Series(sched["open"].values.astype("datetime64[ns]"))
            .cast(pl.Datetime("ns"))
            .dt.replace_time_zone("UTC"),
            "close": pl.Series(sched["close"].values.astype("datetime64[ns]"))
            .cast(pl.Datetime("ns"))
            .dt.replace_time_zone("UTC"),
        }
    )


def _weekday_close(d: pl.Expr, tz: str) -> pl.Expr:
    return (
        (d.cast(pl.Datetime("ns")) + pl.duration(hours=16))
        .dt.replace_time_zone(tz, non_existent="null")
        .dt.convert_time_zone("UTC")
        .cast(TS_NS)
    )


def next_session(dates: pl.Series, calendar: str = "XNYS") -> pl.Series:
    """The first session strictly after each date (Monday-Friday outside the calendar's range)."""
    s = session_table(calendar)
    frame = pl.DataFrame({"d": dates.cast(pl.Date)}).with_row_index("_i")
    nxt = frame.sort("d").join_asof(
        s.select(pl.col("session"), pl.col("session").alias("d2")).sort("d2"),
        left_on="d",
        right_on="d2",
        strategy="forward",
        allow_exact_matches=False,
    )
    last = s["session"].max()
    fallback = (
        pl.Series(
            np.busday_offset(frame["d"].to_numpy().astype("datetime64[D]"), 1, roll="forward").astype("datetime64[D]")
        )
        if frame.height
        else pl.Series([], dtype=pl.Date)
    )
    nxt = nxt.sort("_i").with_columns(fallback.cast(pl.Date).alias("_fb"))
    out = nxt.select(
        pl.when(pl.col("session").is_null() | (pl.col("d") >= last))
        .then(pl.col("_fb"))
        .otherwise(pl.col("session"))
        .alias("next_session")
    )
    return out["next_session"]


def session_close_on_or_before(dates: pl.Series, calendar: str = "XNYS", tz: str = "America/New_York") -> pl.Series:
    """The close (UTC) of the last session on or before each date (16:00 local outside the calendar)."""
    s = session_table(calendar)
    frame = pl.DataFrame({"d": dates.cast(pl.Date)}).with_row_index("_i")
    j = (
        frame.sort("d")
        .join_asof(s.select("session", "close").sort("session"), left_on="d", right_on="session", strategy="backward")
        .sort("_i")
    )
    inside = (pl.col("d") >= s["session"].min()) & (pl.col("d") <= s["session"].max())
    return j.select(
        pl.when(inside & pl.col("close").is_not_null())
        .then(pl.col("close"))
        .otherwise(_weekday_close(pl.col("d"), tz))
        .alias("known_at")
    )["known_at"]


def snap_ratio(values: np.ndarray, max_denominator: int = 100, rel_tol: float = 1e-5) -> np.ndarray:
    """Snap factor-file ratios to the simple fraction they encode (6.9999944 -> 7)."""
    out = np.asarray(values, dtype=float).copy()
    for i, v in enumerate(out):  # a handful of events per file: not bulk data
        if np.isfinite(v) and v > 0:
            f = float(Fraction(v).limit_denominator(max_denominator))
            if abs(f - v) <= rel_tol * v:
                out[i] = f
    return out


def events_from_factor_rows(rows: pl.DataFrame, symbol_id: str, calendar: str = "XNYS") -> pl.DataFrame:
    """Derive split and dividend events from parsed factor rows (date, price_factor, split_factor, reference_price).

    Returns bronze.corporate_actions payload columns plus ``_row``/``_raw`` (the earlier row's line
    number; both lines' text). A dividend whose reference price is 0 gets a NaN amount (the ingest
    engine quarantines it: the file cannot say how much was paid).
    """
    r = (
        rows.sort("date")
        .with_columns(
            pl.col("price_factor").shift(-1).alias("pf_next"),
            pl.col("split_factor").shift(-1).alias("sf_next"),
            pl.col("_raw").shift(-1).alias("raw_next"),
        )
        .filter(pl.col("pf_next").is_not_null())
    )
    if r.height == 0:
        return _empty_actions(with_lineage=True)
    r = r.with_columns(
        next_session(r["date"], calendar).alias("ex_date"),
        session_close_on_or_before(r["date"], calendar).alias("known_at"),
        (pl.col("sf_next") / pl.col("split_factor")).alias("_ratio"),
        (pl.col("price_factor") / pl.col("pf_next")).alias("_pf_ratio"),
    )
    common: list[pl.Expr | str] = [
        pl.lit(symbol_id).alias("symbol_id"),
        "ex_date",
        "price_factor",
        "split_factor",
        "known_at",
        "_row",
        pl.concat_str(["_raw", "raw_next"], separator=" | ").alias("_raw"),
    ]
    splits = r.filter((pl.col("_ratio") - 1).abs() > 1e-9)
    splits = splits.select(
        *common,
        pl.lit("split").alias("kind"),
        pl.Series("ratio", snap_ratio(splits["_ratio"].to_numpy()), dtype=pl.Float64),
        pl.lit(None, pl.Float64).alias("amount"),
    )
    divs = r.filter((pl.col("_pf_ratio") - 1).abs() > 1e-9).select(
        *common,
        pl.lit("dividend").alias("kind"),
        pl.lit(None, pl.Float64).alias("ratio"),
        pl.when(pl.col("reference_price") > 0)
        .then(pl.col("reference_price") * (1 - pl.col("_pf_ratio")))
        .otherwise(float("nan"))
        .alias("amount"),
    )
    return pl.concat([splits, divs]).select(*ACTION_COLUMNS, "_row", "_raw").sort("ex_date", "kind")


def _empty_actions(with_lineage: bool = False) -> pl.DataFrame:
    schema: SchemaDict = {
        "symbol_id": pl.String,
        "ex_date": pl.Date,
        "kind": pl.String,
        "ratio": pl.Float64,
        "amount": pl.Float64,
        "price_factor": pl.Float64,
        "split_factor": pl.Float64,
        "known_at": TS_NS,
    }
    if with_lineage:
        schema = {**schema, "_row": pl.Int64, "_raw": pl.String}
    return pl.DataFrame(schema=schema)


def known_actions(actions: pl.DataFrame, as_of: datetime | None) -> pl.DataFrame:
    """The actions a decision at ``as_of`` may use: ``known_at <= as_of`` (all when as_of is None)."""
    if as_of is None:
        return actions
    return actions.filter(pl.col("known_at") <= pl.lit(as_of).cast(TS_NS))


# ---- Yahoo ---------------------------------------------------------------------------------------
def yahoo_adjustment_frame(path: Path) -> pl.DataFrame:
    """Read (date, close, adj_close) from a Yahoo CSV, via the tabular adapter's reader when it exists.

    The fallback is a minimal polars read of ``Date``, ``Close``, ``Adj Close``; rows whose values
    are not numbers (Yahoo writes ``null``) are dropped.
    """
    try:
        from lakehouse.sources.tabular import yahoo_adjustment_frame as tabular_reader
    except ImportError:
        pass
    else:
        return tabular_reader(path)
    raw = pl.read_csv(path, infer_schema=False)
    return (
        raw.select(
            pl.col("Date").str.strptime(pl.Date, "%Y-%m-%d", strict=False).alias("date"),
            pl.col("Close").cast(pl.Float64, strict=False).alias("close"),
            pl.col("Adj Close").cast(pl.Float64, strict=False).alias("adj_close"),
        )
        .drop_nulls()
        .sort("date")
    )


def yahoo_dividends(frame: pl.DataFrame, symbol_id: str, rel_tol: float = 5e-5, calendar: str = "XNYS") -> pl.DataFrame:
    """Dividends from steps in ``adj_close / close``: D = close[d-1] * (1 - r[d-1] / r[d]).

    Amounts are in Yahoo's (split-adjusted) units. ``known_at`` follows the same rule as for LEAN:
    the close of the session before the ex-date.
    """
    f = frame.sort("date").with_columns((pl.col("adj_close") / pl.col("close")).alias("r"))
    f = f.with_columns(
        (pl.col("r").shift(1) / pl.col("r")).alias("step"),
        pl.col("close").shift(1).alias("prev_close"),
        pl.col("date").shift(1).alias("prev_date"),
    )
    ev = f.filter(pl.col("step").is_not_null() & ((1 - pl.col("step")) > rel_tol))
    return ev.select(
        pl.lit(symbol_id).alias("symbol_id"),
        pl.col("date").alias("ex_date"),
        pl.lit("dividend").alias("kind"),
        pl.lit(None, pl.Float64).alias("ratio"),
        (pl.col("prev_close") * (1 - pl.col("step"))).alias("amount"),
        pl.lit(None, pl.Float64).alias("price_factor"),
        pl.lit(None, pl.Float64).alias("split_factor"),
        session_close_on_or_before(ev["prev_date"], calendar).alias("known_at"),
    )


def yahoo_splits(
    frame: pl.DataFrame, raw_close: pl.DataFrame, symbol_id: str, rel_tol: float = 0.02, calendar: str = "XNYS"
) -> pl.DataFrame:
    """Splits from steps in raw close / Yahoo (split-adjusted) close; ``raw_close`` has date, close."""
    j = (
        frame.select("date", pl.col("close").alias("y"))
        .join(raw_close.select("date", pl.col("close").alias("raw")), on="date")
        .sort("date")
    )
    j = j.with_columns((pl.col("raw") / pl.col("y")).alias("s")).with_columns(
        (pl.col("s").shift(1) / pl.col("s")).alias("step"), pl.col("date").shift(1).alias("prev_date")
    )
    ev = j.filter(pl.col("step").is_not_null() & ((pl.col("step").log().abs()) > np.log(1.2)))
    snapped = snap_ratio(ev["step"].to_numpy(), max_denominator=20, rel_tol=rel_tol)
    return ev.select(
        pl.lit(symbol_id).alias("symbol_id"),
        pl.col("date").alias("ex_date"),
        pl.lit("split").alias("kind"),
        pl.Series("ratio", snapped, dtype=pl.Float64),
        pl.lit(None, pl.Float64).alias("amount"),
        pl.lit(None, pl.Float64).alias("price_factor"),
        pl.lit(None, pl.Float64).alias("split_factor"),
        session_close_on_or_before(ev["prev_date"], calendar).alias("known_at"),
    )


def as_date(value: date | str) -> date:
    return value if isinstance(value, date) else date.fromisoformat(value)
