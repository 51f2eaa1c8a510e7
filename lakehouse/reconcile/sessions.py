"""Place timestamps in trading sessions and session-aligned bar slots.

Intraday bars are aligned on the session open (a 1h bar of a 09:30 session covers 09:30-10:30)
and the last bar of a session ends at the close (13:00 on a half day); a daily bar is the whole
session and ends at its close. A timestamp outside every session belongs to no bar.
"""

from __future__ import annotations

from datetime import timedelta
from typing import cast

import numpy as np
import polars as pl

from core.errors import ConfigError
from core.timetypes import TIMEFRAMES, tf_ns  # noqa: F401  (re-exported for reconcile)
from lakehouse.calendars import TS, canonical, sessions


def calendar_column(frame: pl.DataFrame, calendars: dict[str, str]) -> pl.Series:
    """Return the canonical calendar of each row's ``symbol_id``; unknown symbols are an error."""
    symbols = frame.get_column("symbol_id").unique().to_list()
    missing = sorted(s for s in symbols if s not in calendars)
    if missing:
        raise ConfigError(f"no trading calendar for symbols {missing}: declare them in the security master")
    mapping = {s: canonical(calendars[s]) for s in symbols}
    return frame.get_column("symbol_id").replace_strict(mapping, return_dtype=pl.String).alias("calendar")


def session_table(calendar_names: list[str], lo_ns: int, hi_ns: int) -> pl.DataFrame:
    """Return the sessions of every named calendar overlapping ``[lo_ns, hi_ns]`` (UTC ns)."""
    lo = pl.Series([lo_ns]).cast(TS).item() - timedelta(days=1)
    hi = pl.Series([hi_ns]).cast(TS).item() + timedelta(days=1)
    frames = [sessions(c, lo, hi) for c in sorted(set(calendar_names))]
    return pl.concat(frames).with_columns(
        pl.col("open").dt.epoch("ns").alias("open_ns"), pl.col("close").dt.epoch("ns").alias("close_ns")
    )


def locate(ts_ns: pl.Series, calendar: pl.Series, table: pl.DataFrame) -> pl.DataFrame:
    """Return, per timestamp, the open and close (int ns) of the session holding it, or nulls.

    A timestamp equal to a close belongs to that session (closing prints are stamped at the close).
    Uses a binary search per calendar: no sort of the (large) input is needed.
    """
    ts = ts_ns.to_numpy()
    names = calendar.unique().to_list()
    open_out = np.full(ts.shape, np.iinfo(np.int64).min, dtype=np.int64)
    close_out = np.full(ts.shape, np.iinfo(np.int64).min, dtype=np.int64)
    for name in names:
        sub = table.filter(pl.col("calendar") == name).sort("open_ns")
        opens, closes = sub["open_ns"].to_numpy(), sub["close_ns"].to_numpy()
        rows = (calendar == name).to_numpy() if len(names) > 1 else slice(None)
        pos = np.searchsorted(opens, ts[rows], side="right") - 1
        at = np.clip(pos, 0, None)
        ok = (pos >= 0) & (ts[rows] <= closes[at])
        open_out[rows] = np.where(ok, opens[at], np.iinfo(np.int64).min)
        close_out[rows] = np.where(ok, closes[at], np.iinfo(np.int64).min)
    none = np.iinfo(np.int64).min
    return pl.DataFrame({"open_ns": open_out, "close_ns": close_out}).with_columns(
        pl.when(pl.col(c) != none).then(pl.col(c)).alias(c) for c in ("open_ns", "close_ns")
    )


def slot_exprs(pos: pl.Expr, tf: str) -> list[pl.Expr]:
    """Return expressions for the bar slot of position ``pos`` (int ns) given ``open_ns``/``close_ns``.

    Produces ``bar_idx`` (0-based within the session), ``n_bars`` (slots in the session) and
    ``bar_end`` (int ns, clipped to the close).
    """
    length = tf_ns(tf)
    if length is None:
        return [
            pl.lit(0, pl.Int64).alias("bar_idx"),
            pl.lit(1, pl.Int64).alias("n_bars"),
            pl.col("close_ns").alias("bar_end"),
        ]
    n_bars = (pl.col("close_ns") - pl.col("open_ns") + length - 1) // length
    idx = pl.min_horizontal((pos - pl.col("open_ns")) // length, n_bars - 1)
    end = pl.min_horizontal(pl.col("open_ns") + (idx + 1) * length, pl.col("close_ns"))
    return [idx.alias("bar_idx"), n_bars.alias("n_bars"), end.alias("bar_end")]


def session_fit(frame: pl.DataFrame, calendars: dict[str, str]) -> dict[tuple[str, str], float]:
    """Return, per (source, symbol), the fraction of rows whose ``ts`` falls inside a session.

    A vendor whose clock is off puts data where the market is closed; this ranks clocks.
    """
    if frame.height == 0:
        return {}
    cal = calendar_column(frame, calendars)
    ts = frame.get_column("ts").cast(TS).dt.epoch("ns") - 1  # bars stamped at their end
    located = locate(ts, cal, session_table(cal.unique().to_list(), cast(int, ts.min()), cast(int, ts.max())))
    fit = (
        frame.select("source", "symbol_id")
        .with_columns(located["open_ns"].is_not_null().alias("inside"))
        .group_by("source", "symbol_id")
        .agg(pl.col("inside").mean())
    )
    return {(r["source"], r["symbol_id"]): r["inside"] for r in fit.iter_rows(named=True)}
