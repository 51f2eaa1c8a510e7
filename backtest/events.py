"""Turn silver bars (and quotes, signals) into the flat, time-ordered event arrays the loop runs on.

- sessions: each bar (stamped at its END) belongs to the exchange-calendars session whose
  ``open < ts <= close``; a bar outside every session, or with zero volume (a halt), is not
  tradable, so an order waits for the symbol's next tradable bar;
- ADV (units per session) and daily vol come from PAST sessions only (trailing ``adv_days``);
  on the first session both are unknown: orders there are not ADV-capped and pay no impact;
- half-spread: a bar's ``half_spread_bps`` column where quotes gave one (``half_spread_from_quotes``),
  else the strategy's proxy;
- a signal reaches the first bar of its symbol stamped at or after its ``known_at`` (its ``ts`` when
  absent); several signals before one bar: the latest wins.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from core.errors import ConfigError
from core.strategy import BacktestCosts
from core.timetypes import PL_TS

REQUIRED_BAR_COLUMNS = ("symbol_id", "ts", "open", "close")


@dataclass(frozen=True)
class Events:
    """Flat arrays, one row per bar event, in (ts, symbol) order."""

    symbols: tuple[str, ...]
    ts: np.ndarray  # int64 ns
    sym: np.ndarray  # int64
    day: np.ndarray  # int64 session id
    open: np.ndarray
    close: np.ndarray
    tradable: np.ndarray
    adv: np.ndarray
    sigma: np.ndarray
    half_spread: np.ndarray
    roll: np.ndarray

    def __len__(self) -> int:
        return int(self.ts.shape[0])


def _as_ns(frame: pl.DataFrame, column: str) -> pl.Expr:
    dtype = frame.schema[column]
    if dtype == pl.Int64:
        return pl.col(column)
    if isinstance(dtype, pl.Datetime):
        return pl.col(column).dt.replace_time_zone(None).cast(pl.Datetime("ns")).cast(pl.Int64)
    raise ConfigError(f"column {column!r} must be a UTC timestamp or int64 nanoseconds, got {dtype}")


def _check_bars(bars: pl.DataFrame) -> None:
    missing = [c for c in REQUIRED_BAR_COLUMNS if c not in bars.columns]
    if missing:
        raise ConfigError(f"bars lack column(s) {missing}; have {bars.columns}")
    bad = bars.select(
        pl.int_range(pl.len()).filter((pl.col("open") <= 0) | (pl.col("close") <= 0) | pl.col("close").is_null())
    )
    if bad.height:
        row = int(bad.item(0, 0))
        raise ConfigError(f"bars row {row}: open/close must be positive prices ({bars.row(row, named=True)})")


def _sessions(frame: pl.DataFrame, calendar: str | None) -> pl.DataFrame:
    """Add ``day`` (session id) and ``in_session`` to a frame sorted by ts."""
    if calendar is None:
        return frame.with_columns((pl.col("ts") // 86_400_000_000_000).alias("day"), pl.lit(True).alias("in_session"))
    from datetime import UTC, datetime

    from lakehouse.calendars import sessions

    ts = frame["ts"].to_numpy()
    lo = datetime.fromtimestamp(int(ts.min()) / 1e9, tz=UTC).date()
    hi = datetime.fromtimestamp(int(ts.max()) / 1e9, tz=UTC).date()
    table = sessions(calendar, lo, hi).select(
        pl.col("session").cast(pl.Int32).cast(pl.Int64).alias("day"),
        pl.col("open").cast(PL_TS).dt.replace_time_zone(None).cast(pl.Int64).alias("s_open"),
        pl.col("close").cast(PL_TS).dt.replace_time_zone(None).cast(pl.Int64).alias("s_close"),
    )
    j = frame.with_columns((pl.col("ts") - 1).alias("_probe")).join_asof(
        table, left_on="_probe", right_on="s_open", strategy="backward"
    )
    return j.with_columns(
        pl.col("day").fill_null(-1),
        (pl.col("s_close").is_not_null() & (pl.col("ts") <= pl.col("s_close"))).alias("in_session"),
    ).drop("_probe", "s_open", "s_close")


def _daily_stats(frame: pl.DataFrame, adv_days: int) -> pl.DataFrame:
    """ADV and daily log-return vol per (symbol, session) from the sessions BEFORE it."""
    daily = (
        frame.group_by("sym", "day", maintain_order=True)
        .agg(pl.col("volume").sum().alias("dvol"), pl.col("close").last().alias("dclose"))
        .sort("sym", "day")
    )
    ret = (pl.col("dclose") / pl.col("dclose").shift(1)).log().over("sym")
    return daily.with_columns(ret.alias("dret")).with_columns(
        pl.col("dvol").rolling_mean(adv_days, min_samples=1).shift(1).over("sym").alias("adv"),
        pl.col("dret").rolling_std(adv_days, min_samples=2).shift(1).over("sym").alias("sigma"),
    )


def _time_order(ts: np.ndarray, sym: np.ndarray, n_sym: int) -> np.ndarray:
    """Permutation putting events in (ts, symbol) order; one int64 key when the span allows it."""
    lo = int(ts.min()) if len(ts) else 0
    if len(ts) and (int(ts.max()) - lo + 1) * max(n_sym, 1) < 2**62:
        return np.argsort((ts - lo) * n_sym + sym, kind="stable")
    return np.lexsort((sym, ts))


def build_events(bars: pl.DataFrame, costs: BacktestCosts, calendar: str | None) -> Events:
    """Order bars as events and attach sessions, tradability, ADV, daily vol, half-spread and roll flags.

    ``bars``: symbol_id, ts (bar end), open, close; optional volume, half_spread_bps, roll
    (continuous futures: first bar of a new contract).
    """
    _check_bars(bars)
    f = bars.with_columns(_as_ns(bars, "ts").alias("ts"))
    if "volume" not in f.columns:
        f = f.with_columns(pl.lit(None, pl.Float64).alias("volume"))
    symbols = tuple(sorted(f["symbol_id"].unique().to_list()))
    codes = {name: i for i, name in enumerate(symbols)}
    keep = [c for c in ("ts", "open", "close", "volume", "half_spread_bps", "roll") if c in f.columns]
    f = f.select(*keep, pl.col("symbol_id").replace_strict(codes, return_dtype=pl.Int64).alias("sym"))
    f = f[_time_order(f["ts"].to_numpy(), f["sym"].to_numpy(), len(symbols))]
    ts, sym = f["ts"].to_numpy(), f["sym"].to_numpy()
    dup = np.flatnonzero((ts[1:] == ts[:-1]) & (sym[1:] == sym[:-1]))
    if len(dup):
        raise ConfigError(f"bars: duplicate (symbol_id, ts) {symbols[sym[dup[0]]]} {ts[dup[0]]}")
    f = _sessions(f, calendar)
    stats = _daily_stats(f, costs.adv_days)
    # attach each (symbol, session)'s stats: a sorted-key lookup (stats has one row per pair)
    span = int(max(stats["day"].to_numpy().max(), f["day"].to_numpy().max())) + 2
    skey = stats["sym"].to_numpy() * span + stats["day"].to_numpy() + 1
    pos = np.searchsorted(skey, f["sym"].to_numpy() * span + f["day"].to_numpy() + 1)
    f = f.with_columns(
        pl.Series("adv", stats["adv"].to_numpy()[pos]), pl.Series("sigma", stats["sigma"].to_numpy()[pos])
    )
    halted = pl.col("volume").fill_null(1.0) <= 0
    spread = (
        pl.col("half_spread_bps").fill_null(costs.half_spread_bps)
        if "half_spread_bps" in f.columns
        else pl.lit(costs.half_spread_bps)
    )
    f = f.with_columns(
        (pl.col("in_session") & ~halted).alias("tradable"),
        (spread * 1e-4).cast(pl.Float64).alias("half_spread"),
        (pl.col("roll").fill_null(False) if "roll" in f.columns else pl.lit(False)).alias("roll"),
    )

    def arr(name: str, dtype) -> np.ndarray:
        return np.ascontiguousarray(f[name].to_numpy(allow_copy=True).astype(dtype, copy=False))

    return Events(
        symbols=symbols,
        ts=arr("ts", np.int64),
        sym=arr("sym", np.int64),
        day=arr("day", np.int64),
        open=arr("open", np.float64),
        close=arr("close", np.float64),
        tradable=arr("tradable", np.bool_),
        adv=f["adv"].cast(pl.Float64).fill_null(float("nan")).to_numpy().copy(),
        sigma=f["sigma"].cast(pl.Float64).fill_null(float("nan")).to_numpy().copy(),
        half_spread=arr("half_spread", np.float64),
        roll=arr("roll", np.bool_),
    )


def held_sizes(signals: pl.DataFrame, hold: int, column: str = "size") -> pl.DataFrame:
    """Hold each signal's size for ``hold`` signals: a symbol's target is the mean of its last ``hold`` sizes.

    A size is sized for the sizing horizon, so a signal issued every step of an h-step horizon is
    one of h overlapping positions, each held h steps (Jegadeesh and Titman's overlapping
    portfolios); each carries 1/h of the book. Trading only the latest signal instead re-sizes the
    whole book every step and pays the spread on every wiggle of the forecast: on the simulator the
    oracle's 60 s forecasts made Sharpe -24 that way and +5.6 held (``hold`` = 60, same costs).
    A symbol's first signals average over the ones it has (the book builds up).
    """
    if hold < 1:
        raise ConfigError(f"hold must be at least 1 signal, got {hold}")
    if hold == 1:
        return signals
    known = "known_at" if "known_at" in signals.columns else "ts"
    return signals.sort("symbol_id", known).with_columns(
        pl.col(column).cast(pl.Float64).rolling_mean(hold, min_samples=1).over("symbol_id")
    )


def align_targets(events: Events, signals: pl.DataFrame, column: str) -> np.ndarray:
    """Return one target per event: the signal's ``column`` at the first bar that can see it, else NaN."""
    if column not in signals.columns:
        raise ConfigError(f"signals lack the target column {column!r}; have {signals.columns}")
    known = "known_at" if "known_at" in signals.columns else "ts"
    codes = {name: i for i, name in enumerate(events.symbols)}
    s = signals.select(
        pl.col("symbol_id").replace_strict(codes, default=-1, return_dtype=pl.Int64).alias("sym"),
        _as_ns(signals, known).alias("_known"),
        pl.col(column).cast(pl.Float64).alias("_target"),
    ).filter(pl.col("sym") >= 0)
    s = s[_time_order(s["_known"].to_numpy(), s["sym"].to_numpy(), len(events.symbols))].with_row_index("_sig")
    if s.height == len(events):  # one signal per bar, stamped as the bars: each bar sees its own
        if np.array_equal(s["_known"].to_numpy(), events.ts) and np.array_equal(s["sym"].to_numpy(), events.sym):
            return np.ascontiguousarray(s["_target"].fill_null(float("nan")).to_numpy())
    left = pl.DataFrame({"ts": events.ts, "sym": events.sym, "_e": np.arange(len(events))})
    j = left.join_asof(s, left_on="ts", right_on="_known", by="sym", strategy="backward", check_sortedness=False)
    j = j.sort("_e").with_columns(
        (pl.col("_sig").is_not_null() & (pl.col("_sig") != pl.col("_sig").shift(1).over("sym")).fill_null(True)).alias(
            "_new"
        )
    )
    out = j.select(pl.when("_new").then("_target").otherwise(None)).to_series().fill_null(float("nan"))
    return np.ascontiguousarray(out.to_numpy())


def half_spread_from_quotes(bars: pl.DataFrame, quotes: pl.DataFrame, tf_ns: int) -> pl.DataFrame:
    """Add ``half_spread_bps`` to bars: the median quoted half-spread (over mid) inside each bar.

    ``quotes``: symbol_id, ts, bid, ask. A bar without a valid quote keeps a null (the proxy applies).
    """
    q = quotes.filter((pl.col("bid") > 0) & (pl.col("ask") >= pl.col("bid"))).select(
        "symbol_id",
        # the bar that ends at or after the quote: bars are stamped at their end
        ((_as_ns(quotes, "ts") + tf_ns - 1) // tf_ns * tf_ns).alias("_bar"),
        ((pl.col("ask") - pl.col("bid")) / (pl.col("ask") + pl.col("bid")) * 1e4).alias("half_spread_bps"),
    )
    per_bar = q.group_by("symbol_id", "_bar").agg(pl.col("half_spread_bps").median())
    b = bars.with_columns(_as_ns(bars, "ts").alias("_bar"))
    return b.join(per_bar, on=["symbol_id", "_bar"], how="left", maintain_order="left").drop("_bar")


def ticks_as_bars(trades: pl.DataFrame) -> pl.DataFrame:
    """Turn trade ticks (symbol_id, ts, price, size) into one event row per (symbol_id, ts).

    Each tick is an event: an order decided on one fills at the next tick's price (the "open" of
    the next row). Prints sharing a timestamp merge: first price as open, last as close, sizes summed.
    """
    missing = [c for c in ("symbol_id", "ts", "price", "size") if c not in trades.columns]
    if missing:
        raise ConfigError(f"trades lack column(s) {missing}; have {trades.columns}")
    order = ["seq"] if "seq" in trades.columns else []
    return (
        trades.sort("symbol_id", "ts", *order)
        .group_by("symbol_id", "ts", maintain_order=True)
        .agg(
            pl.col("price").first().alias("open"),
            pl.col("price").last().alias("close"),
            pl.col("size").sum().alias("volume"),
        )
    )
