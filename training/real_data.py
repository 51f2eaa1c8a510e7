"""Real vendor data as evaluation arrays: BAC ticks and daily equity/index bars, through the platform's own path.

Ticks: the LEAN adapter ingests trade and quote ticks into a (temporary) lake (``run_source``), the
reconcile core builds silver 1s consensus bars, ``ret_tick_v1`` labels come from the quote mids over
their span (trade closes with ``price="trade"``) and ``tick_v2`` features from bronze
(``build_tick_features``), both written to gold; the windows are read back from
gold as of each label's decision time (``training_set``), as training does.

Bars: LEAN daily equities (raw, with the splits and dividends of LEAN's factor files applied point
in time) and the arch package's index files through their tabular mapping, ``bar_v1`` features and
forward log-return labels at 1, 5 and 20 sessions.

Windows are (N, L, F) with decision rows every ``stride`` rows of a series (neighbouring seconds
are nearly the same sample; the stride keeps memory and CPU in bounds).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from core.clock import FixedClock
from core.errors import TableError
from feature_store.discretize import Discretizer
from feature_store.labels import LabelSpec, make_labels, tick_label_spec
from feature_store.training_set import training_set
from lakehouse.storage import Lake
from training.models.base import Buckets

BAC_DAYS = ("20131007", "20131008", "20131009", "20131010", "20131011")
INGEST_CLOCK = datetime(2026, 11, 1, tzinfo=UTC)  # when the evaluation "received" the files (audit only)


@dataclass(frozen=True)
class Windows:
    """Model windows in decision-time order with their outcomes."""

    X: np.ndarray  # (N, L, F) float32
    y: np.ndarray  # (N, H) bucket index
    r_bps: np.ndarray  # (N, H) realised log return in bps
    times: np.ndarray  # (N,) decision time, ns
    day: np.ndarray  # (N,) day number (days since 1970)
    symbols: np.ndarray  # (N,) symbol id
    names: tuple[str, ...]
    horizons: tuple[int, ...]


def ingest_bac_ticks(lake: Lake, data_root: Path, days: Sequence[str] = BAC_DAYS) -> int:
    """Ingest BAC trade and quote ticks of ``days`` (YYYYMMDD) through the LEAN adapter; return rows written."""
    from lakehouse.run_source import run_source

    files = [f"equity/usa/tick/bac/{d}_{kind}.zip" for d in days for kind in ("trade", "quote")]
    params = {"root": str(Path(data_root) / "lean"), "files": files}
    report = run_source(lake, "lean", params, FixedClock(INGEST_CLOCK))
    if report.failures:
        raise TableError(f"BAC ingest failed: {report.failures}")
    return sum(a.rows_written for a in report.accounts)


def build_tick_gold(
    lake: Lake, start: datetime, end: datetime, symbols: list[str], tz: str = "America/New_York", price: str = "mid"
) -> tuple[int, int]:
    """tick_v2 features and ret_tick_v1 labels of ``[start, end)`` into gold, per UTC day; return (features, labels).

    Labels are mid-quote returns (``price="mid"``) from the main source's quotes, or trade-price
    returns where that source sends no quotes that day (or with ``price="trade"``).
    """
    from feature_store.gold import write_labels
    from feature_store.streaming.session import main_source
    from feature_store.tick.gold import build_tick_features
    from lakehouse.reconcile.pipeline import ReconcileConfig, reconcile_window, ticks_with_mid_fallback
    from lakehouse.security_master import load_instruments
    from lakehouse.tables import BRONZE_QUOTES, BRONZE_TRADES

    calendars = {i.symbol_id: i.calendar for i in load_instruments()}
    n_feat = n_lab = 0
    lo = start
    while lo < end:
        hi = min(datetime.combine(lo.date() + timedelta(days=1), datetime.min.time(), UTC), end)
        window = pl.col("ts").is_between(lo, hi, closed="left") & pl.col("symbol_id").is_in(symbols)
        trades = lake.read(BRONZE_TRADES, ["source", "symbol_id", "ts", "price", "size"]).filter(window)
        if trades.height:
            quotes = lake.read(BRONZE_QUOTES, ["source", "symbol_id", "ts", "bid", "ask", "seq"]).filter(window)
            source = main_source(lake, lo, hi, symbols)
            n_feat += build_tick_features(lake, source, lo, hi, symbols, calendars)
            cfg = ReconcileConfig(timeframes=("1s",), detect_offsets=False)
            bars = reconcile_window(ticks_with_mid_fallback(trades, quotes), _no_bars(), calendars, lo, hi, None, cfg)
            b = bars.bars.filter(pl.col("tf") == "1s").sort("symbol_id", "ts")
            b = b.with_columns(pl.col("ts").dt.convert_time_zone(tz).dt.date().alias("day"))
            book = quotes.filter(pl.col("source") == source)  # one vendor's top of book (its updates are one stream)
            spec = tick_label_spec(price=price if book.height else "trade")
            n_lab += write_labels(lake, make_labels(b, spec, tz=tz, quotes=book), spec.row())
        lo = hi
    return n_feat, n_lab


def _no_bars() -> pl.DataFrame:
    from lakehouse.reconcile.bars import BAR_SCHEMA

    return pl.DataFrame(schema=BAR_SCHEMA)


def gold_windows(
    lake: Lake,
    feature_set: str,
    label_set: str,
    horizons: Sequence[int],
    lookback: int,
    stride: int = 1,
    symbols: list[str] | None = None,
) -> Windows:
    """Windows from gold (point in time, as training reads them), every ``stride``-th decision row per series."""
    from feature_store.gold import read_features, read_labels
    from feature_store.registry import get

    names = get(feature_set).names
    labels = read_labels(lake, label_set)
    if symbols:
        labels = labels.filter(pl.col("symbol_id").is_in(symbols))
    return frame_windows(
        training_set(read_features(lake, feature_set, symbols), labels), names, horizons, lookback, stride
    )


def frame_windows(
    frame: pl.DataFrame, names: Sequence[str], horizons: Sequence[int], lookback: int, stride: int = 1
) -> Windows:
    """Windows of a training-set frame (long in horizon): rows with a label at every horizon and no null feature."""
    if frame.height == 0:
        raise TableError("no training rows (features and labels do not meet)")
    hcols = [str(h) for h in horizons]
    keys = ["symbol_id", "ts", *names]
    wide = frame.pivot(on="horizon", index=keys, values=["bucket", "log_return"], aggregate_function="first")
    b_cols, r_cols = [f"bucket_{h}" for h in hcols], [f"log_return_{h}" for h in hcols]
    missing = [c for c in b_cols if c not in wide.columns]
    if missing:
        raise TableError(f"no labels at {missing}")
    wide = wide.drop_nulls([*b_cols, *names]).sort("symbol_id", "ts")
    x = wide.select(names).to_numpy().astype(np.float32)
    sym = wide["symbol_id"].to_numpy()
    ends: list[int] = []
    start = 0
    for i in range(1, len(sym) + 1):
        if i == len(sym) or sym[i] != sym[start]:
            ends.extend(range(start + lookback - 1, i, stride))
            start = i
    e = np.asarray(ends, dtype=np.int64)
    if len(e) == 0:
        raise TableError(f"no series is {lookback} rows long")
    ts = wide["ts"].dt.epoch("ns").to_numpy()[e]
    order = np.argsort(ts, kind="stable")
    e, ts = e[order], ts[order]
    X = np.ascontiguousarray(x[e[:, None] - np.arange(lookback - 1, -1, -1)[None, :]])
    return Windows(
        X=X,
        y=wide.select(b_cols).to_numpy().astype(np.int64)[e],
        r_bps=wide.select(r_cols).to_numpy().astype(np.float64)[e] * 1e4,
        times=ts,
        day=(ts // 86_400_000_000_000).astype(np.int64),
        symbols=sym[e],
        names=tuple(names),
        horizons=tuple(int(h) for h in horizons),
    )


def tick_windows(
    lake: Lake, data_root: Path, days: Sequence[str], horizons: Sequence[int], lookback: int, stride: int,
    session: tuple[str, str] | None = None, price: str = "mid",
) -> Windows:  # fmt: skip
    """Ingest BAC ``days``, build gold, return windows; ``session`` ("HH:MM", "HH:MM" UTC) keeps part of each day."""
    ingest_bac_ticks(lake, data_root, days)
    first, last = (datetime.strptime(d, "%Y%m%d").replace(tzinfo=UTC) for d in (days[0], days[-1]))
    build_tick_gold(lake, first, last + timedelta(days=1), ["BAC:US"], price=price)
    w = gold_windows(lake, "tick_v2", "ret_tick_v1", horizons, lookback, stride, ["BAC:US"])
    if session is None:
        return w
    sec = (w.times // 1_000_000_000) % 86_400
    lo, hi = (int(s[:2]) * 3600 + int(s[3:]) * 60 for s in session)
    return _take(w, (sec >= lo) & (sec < hi))


def _take(w: Windows, keep: np.ndarray) -> Windows:
    return Windows(
        w.X[keep], w.y[keep], w.r_bps[keep], w.times[keep], w.day[keep], w.symbols[keep], w.names, w.horizons
    )


def daily_bars(data_root: Path, since: date | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Raw daily bars of the LEAN equities and the arch indices, and LEAN's corporate actions."""
    from lakehouse.sources import lean, lean_reference, tabular

    root = Path(data_root)
    params = lean.Params(root=root / "lean", asset_classes=("equity",), resolutions=("daily",), kinds=("trade",))
    frames = [pl.concat([c.data for c in b.chunks]) for b in lean.batches(params, FixedClock(INGEST_CLOCK))]
    idx = tabular.Params(mapping="arch_indices", root=str(root))
    frames += [pl.concat([c.data for c in b.chunks]) for b in tabular.batches(idx, FixedClock(INGEST_CLOCK))]
    cols = ["symbol_id", "ts", "open", "high", "low", "close", "volume"]
    bars = pl.concat([f.select(cols).with_columns(pl.col(c).cast(pl.Float64) for c in cols[2:]) for f in frames])
    bars = bars.with_columns(
        pl.lit("1d").alias("tf"), pl.col("ts").alias("known_at"), pl.lit(None, pl.Float64).alias("vwap")
    )
    if since is not None:
        bars = bars.filter(pl.col("ts") >= datetime.combine(since, datetime.min.time(), UTC))
    factors = root / "lean" / "equity" / "usa" / "factor_files"
    acts = [c.data for p in sorted(factors.glob("*.csv")) for c in lean_reference.factor_chunks(p)]
    return bars.sort("symbol_id", "ts"), pl.concat(acts).drop("_row", "_raw", strict=False)


def bar_label_spec(horizons: Sequence[int] = (1, 5, 20), buckets: Buckets | None = None) -> LabelSpec:
    """Forward log returns of daily bars at ``horizons`` sessions, in wide return buckets."""
    edges = buckets.edges_bps if buckets is not None else bar_buckets().edges_bps
    return LabelSpec("ret_bars_eval", "1d", tuple(horizons), Discretizer(tuple(float(e) for e in edges)))


def bar_buckets(count: int = 101, half_range_bps: float = 1500.0) -> Buckets:
    """Return buckets wide enough for 20-session equity returns (+-15 %, 30 bps apart)."""
    from training.models.base import default_edges_bps

    return Buckets(default_edges_bps(count, -half_range_bps, half_range_bps))


def bar_windows(
    bars: pl.DataFrame, actions: pl.DataFrame, horizons: Sequence[int], lookback: int, stride: int = 1,
    buckets: Buckets | None = None,
) -> Windows:  # fmt: skip
    """bar_v1 windows and forward labels of daily ``bars`` (adjusted point in time with ``actions``)."""
    from feature_store.featurize import compute_set
    from feature_store.registry import get

    feats = compute_set("bar_v1", bars, actions)
    labels = make_labels(bars, bar_label_spec(horizons, buckets), actions)
    return frame_windows(training_set(feats, labels), get("bar_v1").names, horizons, lookback, stride)
