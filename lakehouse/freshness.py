"""Data freshness per (symbol, source) for ``silver.freshness``, and how often data was stale.

Age is measured two ways: ``age_ms`` is the wall-clock time from the last observation to
``as_of``; staleness counts only the time the instrument's market was OPEN in between (calendars
from ``lakehouse.calendars``: exchange sessions, the FX week, 24/7), so a closed session, a weekend
or a holiday never makes data stale. A pair is stale when that open time exceeds its threshold
(``FreshnessThresholds``: by bar timeframe, else by asset class, else a default).

``stale_rate`` replays sample times over a window: the stale time of each (symbol, source) is the
open time spent more than a threshold after the previous sample, as a fraction of the window's
open time. All arithmetic happens in "open-time coordinates" (cumulative open nanoseconds of the
calendar), where every gap and threshold is a plain subtraction.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import cast

import numpy as np
import polars as pl
from pydantic import Field

from core.config import Strict
from core.errors import ConfigError
from lakehouse.calendars import sessions
from lakehouse.schema import PL_TS as TS
from lakehouse.security_master import load_instruments
from lakehouse.storage import Lake, ts_value
from lakehouse.tables import BRONZE_BARS, BRONZE_QUOTES, BRONZE_TRADES, SILVER_FRESHNESS

PAIR = ["symbol_id", "source"]


class FreshnessThresholds(Strict):
    """How much OPEN-market time may pass without data before a (symbol, source) is stale (seconds)."""

    default_s: float = Field(300.0, gt=0)
    by_tf: dict[str, float] = Field(
        default_factory=lambda: {
            "1s": 10.0,
            "1m": 180.0,
            "5m": 900.0,
            "15m": 2700.0,
            "1h": 3 * 3600.0,
            "1d": 2 * 86400.0,
        }
    )
    by_asset_class: dict[str, float] = Field(default_factory=dict)


def instrument_calendars() -> tuple[dict[str, str], dict[str, str]]:
    """Return (symbol -> calendar, symbol -> asset class) from the security master."""
    inst = load_instruments()
    return {i.symbol_id: i.calendar for i in inst}, {i.symbol_id: i.asset_class for i in inst}


def _threshold_ns(df: pl.DataFrame, thresholds: FreshnessThresholds, asset_class: dict[str, str]) -> pl.Expr:
    by_class = pl.col("symbol_id").replace_strict(
        {s: thresholds.by_asset_class[a] for s, a in asset_class.items() if a in thresholds.by_asset_class},
        default=None,
        return_dtype=pl.Float64,
    )
    by_tf = (
        pl.col("tf").replace_strict(thresholds.by_tf, default=None, return_dtype=pl.Float64)
        if "tf" in df.columns
        else pl.lit(None, pl.Float64)
    )
    return (pl.coalesce(by_tf, by_class, pl.lit(thresholds.default_s)) * 1e9).cast(pl.Int64)


class OpenClock:
    """Cumulative open time of one calendar over a range: ``at(t)`` = open ns in [start, t]."""

    def __init__(self, calendar: str, start: datetime, end: datetime):
        s = sessions(calendar, start, end)
        opens = s.get_column("open").dt.epoch("ns").to_numpy()
        closes = s.get_column("close").dt.epoch("ns").to_numpy()
        self.opens, self.closes = opens, closes
        self.before = np.concatenate([[0], np.cumsum(closes - opens)[:-1]]) if len(opens) else np.zeros(0, np.int64)

    def at(self, t_ns: np.ndarray) -> np.ndarray:
        if len(self.opens) == 0:
            return np.zeros(len(t_ns), dtype=np.int64)
        k = np.searchsorted(self.opens, t_ns, side="right") - 1
        kk = np.clip(k, 0, None)
        inside = np.clip(t_ns - self.opens[kk], 0, self.closes[kk] - self.opens[kk])
        return np.where(k >= 0, self.before[kk] + inside, 0)


def _open_ns(
    df: pl.DataFrame, cols: list[str], calendars: dict[str, str], start: datetime, end: datetime
) -> pl.DataFrame:
    """Add ``<col>_open`` (cumulative open ns) for timestamp columns, per the symbol's calendar."""
    missing = sorted(set(df.get_column("symbol_id").unique().to_list()) - set(calendars))
    if missing:
        raise ConfigError(f"freshness: no trading calendar for {missing}; declare them in configs/security_master")
    df = df.with_columns(pl.col("symbol_id").replace_strict(calendars, return_dtype=pl.String).alias("_calendar"))
    parts = []
    for part in df.partition_by("_calendar", maintain_order=True):
        clock = OpenClock(part.get_column("_calendar")[0], start - timedelta(days=7), end + timedelta(days=1))
        parts.append(
            part.with_columns(
                pl.Series(f"{c}_open", clock.at(part.get_column(c).cast(TS).dt.epoch("ns").to_numpy())) for c in cols
            )
        )
    return pl.concat(parts).drop("_calendar")


def last_seen(lake: Lake, as_of: datetime, tables=(BRONZE_TRADES, BRONZE_QUOTES, BRONZE_BARS)) -> pl.DataFrame:
    """The last observation time per (symbol_id, source[, tf]) in bronze, up to ``as_of``."""
    frames = []
    for spec in tables:
        by = [*PAIR, *(["tf"] if "tf" in spec.column_names else [])]
        latest = lake.latest(spec, by, ts_value(as_of))
        if latest.height:
            frames.append(latest)
    if not frames:
        return pl.DataFrame(schema={"symbol_id": pl.String, "source": pl.String, "ts": TS})
    return pl.concat(frames, how="diagonal_relaxed")


def freshness(
    observations: pl.DataFrame,
    as_of: datetime,
    thresholds: FreshnessThresholds = FreshnessThresholds(),
    calendars: dict[str, str] | None = None,
    asset_classes: dict[str, str] | None = None,
) -> pl.DataFrame:
    """Return silver.freshness rows: per (symbol_id, source) last_ts, age_ms at ``as_of`` and stale.

    ``observations`` has symbol_id, source, ts (any number of rows, e.g. ``last_seen``) and an
    optional ``tf``; rows after ``as_of`` are ignored (point in time). Extra columns in the result:
    ``open_age_ms`` (open-market time since last_ts) and ``threshold_ms``.
    """
    if calendars is None or asset_classes is None:
        cal, cls = instrument_calendars()
        calendars, asset_classes = calendars or cal, asset_classes or cls
    obs = observations.with_columns(pl.col("ts").cast(TS)).filter(pl.col("ts") <= pl.lit(as_of).cast(TS))
    obs = obs.with_columns(_threshold_ns(obs, thresholds, asset_classes).alias("_thr"))
    last = obs.group_by(PAIR).agg(pl.col("ts").max().alias("last_ts"), pl.col("_thr").min())
    if last.height == 0:
        return pl.DataFrame(
            schema={
                **pl.DataFrame(SILVER_FRESHNESS.schema.empty_table()).schema,
                "open_age_ms": pl.Float64,
                "threshold_ms": pl.Float64,
            }
        )
    last = last.with_columns(pl.lit(as_of).cast(TS).alias("as_of"))
    start = cast(datetime, last.get_column("last_ts").min())
    timed = _open_ns(last, ["last_ts", "as_of"], calendars, start, as_of)
    open_age = pl.col("as_of_open") - pl.col("last_ts_open")
    return timed.select(
        *PAIR,
        "as_of",
        "last_ts",
        ((pl.col("as_of") - pl.col("last_ts")).dt.total_nanoseconds() / 1e6).alias("age_ms"),
        (open_age > pl.col("_thr")).alias("stale"),
        (open_age / 1e6).alias("open_age_ms"),
        (pl.col("_thr") / 1e6).alias("threshold_ms"),
    ).sort(PAIR)


def stale_rate(
    samples: pl.DataFrame,
    start: datetime,
    end: datetime,
    thresholds: FreshnessThresholds = FreshnessThresholds(),
    calendars: dict[str, str] | None = None,
    asset_classes: dict[str, str] | None = None,
) -> pl.DataFrame:
    """Per (symbol_id, source): open time in [start, end], open time stale, and their ratio.

    A pair is fresh at ``start`` unless it has a sample at or before ``start`` that is already
    older than its threshold; after each sample it goes stale once the threshold of open time has
    passed without another one. Pairs with no sample in or before the window are not reported.
    """
    if calendars is None or asset_classes is None:
        cal, cls = instrument_calendars()
        calendars, asset_classes = calendars or cal, asset_classes or cls
    s = samples.with_columns(pl.col("ts").cast(TS)).filter(pl.col("ts") <= pl.lit(end).cast(TS))
    s = s.with_columns(_threshold_ns(s, thresholds, asset_classes).alias("_thr"))
    s = s.with_columns(pl.col("_thr").min().over(PAIR)).select(*PAIR, "ts", "_thr")
    # Anchor each pair at the window start: its last sample before it, or the start itself.
    lo = pl.lit(start).cast(TS)
    before = s.filter(pl.col("ts") <= lo).group_by(PAIR).agg(pl.col("ts").max(), pl.col("_thr").first())
    first_in = s.filter(pl.col("ts") > lo).group_by(PAIR).agg(pl.col("_thr").first())
    anchors = pl.concat(
        [before, first_in.join(before, on=PAIR, how="anti").with_columns(lo.alias("ts")).select(before.columns)]
    )
    s = pl.concat([anchors, s.filter(pl.col("ts") > lo).select(anchors.columns)]).sort(*PAIR, "ts")
    s = s.with_columns(
        pl.col("ts").shift(-1).over(PAIR).fill_null(pl.lit(end).cast(TS)).alias("next_ts"),
        lo.alias("_start"),
        pl.lit(end).cast(TS).alias("_end"),
    )
    timed = _open_ns(s, ["ts", "next_ts", "_start", "_end"], calendars, start, end)
    w0, w1 = pl.col("_start_open"), pl.col("_end_open")
    stale_from = pl.max_horizontal(pl.col("ts_open") + pl.col("_thr"), w0)
    stale_to = pl.min_horizontal(pl.col("next_ts_open"), w1)
    per_gap = timed.with_columns((stale_to - stale_from).clip(lower_bound=0).alias("_stale"))
    return (
        per_gap.group_by(PAIR)
        .agg((pl.col("_stale").sum() / 1e6).alias("stale_ms"), ((w1 - w0).first() / 1e6).alias("open_ms"))
        .with_columns(
            pl.when(pl.col("open_ms") > 0)
            .then(pl.col("stale_ms") / pl.col("open_ms"))
            .otherwise(0.0)
            .alias("stale_fraction")
        )
        .sort(PAIR)
    )


def stale_summary(fresh: pl.DataFrame, rates: pl.DataFrame | None = None) -> dict[str, float]:
    """Summarise: pairs, stale pairs, the stale pair rate, and the fraction of open time stale."""
    out = {
        "pairs": float(fresh.height),
        "stale_pairs": float(cast(int, fresh.get_column("stale").sum())),
        "pair_stale_rate": float(cast(float, fresh.get_column("stale").mean()) or 0.0) if fresh.height else 0.0,
    }
    if rates is not None and rates.height:
        total = float(rates.get_column("open_ms").sum())
        out["time_stale_fraction"] = float(rates.get_column("stale_ms").sum()) / total if total else 0.0
    return out


def write_freshness(lake: Lake, fresh: pl.DataFrame) -> dict:
    """Upsert freshness rows on (symbol_id, source, as_of): re-running an as_of changes nothing."""
    return lake.upsert(SILVER_FRESHNESS, fresh)


def change_times(frame: pl.DataFrame, values: list[str]) -> pl.DataFrame:
    """Keep the rows where any of ``values`` differs from the pair's previous row (ts order).

    A feed that keeps sending the same quote is as stale as one that sends nothing; sampling on
    changes makes ``stale_rate`` see both.
    """
    ordered = frame.sort(*PAIR, "ts")
    changed = pl.any_horizontal([pl.col(v).ne_missing(pl.col(v).shift(1).over(PAIR)) for v in values])
    return ordered.filter(changed)
