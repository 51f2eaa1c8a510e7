"""Labels: forward log returns per horizon and their buckets (gold.labels), kept apart from features.

A label at ``ts`` is log(P[t + h] / P[t]) within one series (a symbol's bars; for 1 s grids a
symbol's session, so no label crosses the overnight gap). ``LabelSpec.price`` says what P is and is
stored with the label set: ``"trade"`` the bars' close (last trade), or ``"mid"`` the quote mid as of
each second's end; 1 s series are labelled on every second of their span (h is exactly h seconds).
Trade prices bounce between bid and ask, so a 1-5 s trade-price return is mostly the next print's
side, predictable and untradable; the tick labels default to the mid wherever quotes exist. Prices are back-adjusted for the splits
and dividends between t and t + h, so an ex-date inside the horizon is not a return. A label's
``known_at`` is when its outcome became known (the end bar's ``known_at``): training purges on it,
and nothing but ``feature_store.training_set`` ever joins labels to features.

    spec = LabelSpec("ret_bars_v1", tf="1d", horizons=(1, 5, 21))
    labels = make_labels(bars, spec, actions)
    labels = make_labels(bars_1s, tick_label_spec(), quotes=quotes)  # mid-quote labels
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl

from core.errors import ConfigError, TableError
from feature_store.discretize import Discretizer
from feature_store.pit_prices import adjust_with
from lakehouse.corporate_actions import TS_NS

TICK_HORIZONS_S = (1, 5, 10, 30, 60, 120, 300, 600)
BAR_HORIZONS = (1, 4, 16)
PRICE_SOURCES = ("trade", "mid")
SECOND_NS = 1_000_000_000


@dataclass(frozen=True)
class LabelSpec:
    """A label set: name, timeframe, horizons (rows of the series: bars, or seconds on a 1 s grid), edges.

    ``vol_column`` names a per-row volatility (per-bar, e.g. ``rv_21``) used when the discretizer is
    vol-scaled: the row's horizon vol is ``vol * sqrt(h)``. ``price`` is what the returns are of:
    ``"trade"`` (the bars' close) or ``"mid"`` (quote mids as of each second's end; 1 s sets only).
    """

    name: str
    tf: str
    horizons: tuple[int, ...] = BAR_HORIZONS
    discretizer: Discretizer = field(default_factory=Discretizer.returns)
    series: tuple[str, ...] = ("symbol_id",)
    vol_column: str | None = None
    price: str = "trade"

    def __post_init__(self) -> None:
        if not self.horizons or any(h <= 0 for h in self.horizons):
            raise ConfigError(f"label set {self.name}: horizons must be positive, got {self.horizons}")
        if self.price not in PRICE_SOURCES:
            raise ConfigError(f"label set {self.name}: price must be one of {PRICE_SOURCES}, got {self.price!r}")
        if self.price == "mid" and self.tf != "1s":
            raise ConfigError(f"label set {self.name}: mid-quote labels need tf 1s, got {self.tf!r}")
        if self.discretizer.vol_scaled and not self.vol_column:
            raise ConfigError(f"label set {self.name}: a vol-scaled discretizer needs vol_column")

    def row(self) -> dict:
        """The gold.label_sets row (edges stored with the label set)."""
        return {
            "label_set": self.name,
            "tf": self.tf,
            "horizons": list(self.horizons),
            "discretizer": self.discretizer.to_json(),
            "price": self.price,
        }


def tick_label_spec(name: str = "ret_tick_v1", discretizer: Discretizer | None = None, price: str = "mid") -> LabelSpec:
    """The SPECS tick labels: 1..600 s on a 1 s grid, per (symbol, day) session; mid-quote returns by default."""
    return LabelSpec(
        name, "1s", TICK_HORIZONS_S, discretizer or Discretizer.returns(), ("symbol_id", "day"), price=price
    )


def second_grid(bars: pl.DataFrame, series: tuple[str, ...]) -> pl.DataFrame:
    """Every second (series..., ts) from each series' first to its last bar, sorted by ts."""
    span = bars.group_by(list(series)).agg(
        pl.col("ts").cast(TS_NS).min().alias("lo"), pl.col("ts").cast(TS_NS).max().alias("hi")
    )
    return (
        span.with_columns(pl.datetime_ranges("lo", "hi", interval="1s", time_unit="ns", time_zone="UTC").alias("ts"))
        .explode("ts")
        .drop("lo", "hi")
        .with_columns(pl.col("ts").cast(TS_NS))
        .sort("ts")
    )


def dense_trade_closes(bars: pl.DataFrame, series: tuple[str, ...]) -> pl.DataFrame:
    """1 s bars on every second of each series' span: a second without a trade keeps the last close.

    Silver keeps only seconds with trades; labelled row by row, "h = 1" would be the next traded
    second (BAC: 872 of 1,800 seconds traded), not one second. ``known_at`` is the second's end.
    """
    b = bars.select(*series, pl.col("ts").cast(TS_NS), "close").sort("ts")
    out = second_grid(bars, series).join_asof(b, on="ts", by=list(series), strategy="backward", check_sortedness=False)
    return out.with_columns(pl.col("ts").alias("known_at")).sort(*series, "ts")


def mid_closes(
    bars: pl.DataFrame, quotes: pl.DataFrame, series: tuple[str, ...], tz: str = "America/New_York"
) -> pl.DataFrame:
    """A dense 1 s grid per series from its first to its last bar, ``close`` = the quote mid as of each second.

    Quotes are top-of-book updates that may carry one side (LEAN's NBBO feed): each side holds until
    updated. A second's mid is that of the last uncrossed book (bid > 0, ask >= bid) at or before the second's
    end ``ts`` (bars are stamped at their end) within the same series (a ``day`` in ``series`` is the
    exchange-local date in ``tz``, so no mid carries over the night); ``known_at`` is that end.
    Seconds before a series' first quote get no row. Raises ``TableError`` naming the series that has bars but no quote.
    """
    q = quotes.select(
        "symbol_id", pl.col("ts").cast(TS_NS), "bid", "ask", *(["seq"] if "seq" in quotes.columns else [])
    )
    if "day" in series:
        q = q.with_columns(pl.col("ts").dt.convert_time_zone(tz).dt.date().alias("day"))
    by = [c for c in series if c in q.columns]
    q = (
        q.sort("ts", *(["seq"] if "seq" in q.columns else []))
        .with_columns(pl.col(side).forward_fill().over(by) for side in ("bid", "ask"))  # a side holds until updated
        .filter((pl.col("bid") > 0) & (pl.col("ask") >= pl.col("bid")))
        .select(*by, "ts", ((pl.col("bid") + pl.col("ask")) / 2).alias("close"))
    )
    out = second_grid(bars, series).join_asof(q, on="ts", by=by, strategy="backward", check_sortedness=False)
    quoted = out.group_by(list(series)).agg(pl.col("close").is_not_null().any().alias("any"))
    bare = quoted.filter(~pl.col("any"))
    if bare.height:
        raise TableError(f"mid-quote labels: no two-sided quote for {bare.drop('any').rows()[:5]} (series {series})")
    return out.filter(pl.col("close").is_not_null()).with_columns(pl.col("ts").alias("known_at")).sort(*series, "ts")


def forward_returns(frame: pl.DataFrame, horizons: tuple[int, ...], series: tuple[str, ...]) -> pl.DataFrame:
    """Long frame (series..., ts, known_at, horizon, log_return) of close-to-close forward log returns.

    Rows whose horizon runs past the series end get no label.
    """
    lp = pl.col("close").log()
    out = []
    for h in horizons:
        out.append(
            frame.select(
                *series,
                "ts",
                pl.lit(h, pl.Int64).alias("horizon"),
                (lp.shift(-h) - lp).over(series).alias("log_return"),
                pl.col("known_at").shift(-h).over(series).alias("known_at"),
                *([c for c in frame.columns if c.startswith("_vol")]),
            ).filter(pl.col("log_return").is_not_null())
        )
    return pl.concat(out)


def make_labels(
    bars: pl.DataFrame,
    spec: LabelSpec,
    actions: pl.DataFrame | None = None,
    tz: str = "America/New_York",
    quotes: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """gold.labels rows for ``bars`` (one tf; RAW prices plus ``actions``, or already adjusted prices).

    ``bars`` need symbol_id, ts, known_at, close (and ``day`` for tick series, ``vol_column`` when the
    discretizer is vol-scaled). A ``price="mid"`` spec needs ``quotes`` (symbol_id, ts, bid, ask): the
    bars then only give each series' span, and every second of it is labelled from the quote mids.
    """
    need = {*spec.series, "ts", "known_at", "close"} | ({spec.vol_column} if spec.vol_column else set())
    missing = sorted(need - set(bars.columns))
    if missing:
        raise TableError(f"label set {spec.name}: bars lack columns {missing}")
    if spec.price == "mid":
        if quotes is None:
            raise TableError(f"label set {spec.name} labels from quote mids: pass quotes (symbol_id, ts, bid, ask)")
        if spec.vol_column or (actions is not None and actions.height):
            raise ConfigError(f"label set {spec.name}: mid-quote labels take no vol column or corporate actions")
        bars = mid_closes(bars, quotes, spec.series, tz)
    elif spec.tf == "1s" and not spec.vol_column:
        bars = dense_trade_closes(bars, spec.series)  # horizons are seconds, not traded seconds
    b = bars.with_columns(pl.col("ts").cast(TS_NS), pl.col("known_at").cast(TS_NS)).sort(*spec.series, "ts")
    if actions is not None and actions.height:
        if "volume" not in b.columns:
            b = b.with_columns(pl.lit(0.0).alias("volume"))
        mine = actions.filter(pl.col("symbol_id").is_in(b["symbol_id"].unique().to_list()))
        b = adjust_with(b, mine, tz)
    b = b.with_columns(pl.max_horizontal("known_at", "ts").cum_max().over(spec.series).alias("known_at"))
    if spec.vol_column:
        b = b.with_columns(pl.col(spec.vol_column).alias("_vol"))
    fwd = forward_returns(b, spec.horizons, spec.series)
    d = spec.discretizer
    vol = None
    if d.vol_scaled:
        fwd = fwd.filter(pl.col("_vol").is_not_null() & (pl.col("_vol") > 0))
        vol = (fwd["_vol"] * fwd["horizon"].cast(pl.Float64).sqrt() * d.scale).to_numpy()
    buckets = d.bucket(fwd["log_return"].to_numpy(), vol) if fwd.height else np.zeros(0, np.int16)
    return fwd.select(
        "symbol_id",
        pl.lit(spec.tf).alias("tf"),
        "ts",
        "known_at",
        pl.lit(spec.name).alias("label_set"),
        "horizon",
        "log_return",
        pl.Series("bucket", buckets, pl.Int64),
        (pl.Series("vol", vol, pl.Float64) if vol is not None else pl.lit(None, pl.Float64).alias("vol")),
    ).sort("symbol_id", "horizon", "ts")
