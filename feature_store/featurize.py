"""Batch featurization: raw silver bars (+ corporate actions) in, gold.features and gold.labels rows out.

``COMPUTE`` maps each bar-level feature set to its batch function ``(bars, actions, tz) -> rows``;
every function reads RAW bars and adjusts them point in time itself. ``featurize_window`` computes
over the whole history up to ``end`` (the recursive features need it) and keeps the rows in
``[start, end]``, so a window's rows do not depend on where the previous run stopped and re-running
a window writes the same rows.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import polars as pl

from core.errors import ConfigError
from feature_store.bars.compute import bar_features
from feature_store.labels import LabelSpec, make_labels
from feature_store.pit_prices import pit_features
from lakehouse.corporate_actions import TS_NS

SetCompute = Callable[[pl.DataFrame, pl.DataFrame | None, str], pl.DataFrame]


def _bars_set(name: str) -> SetCompute:
    return lambda bars, actions, tz: pit_features(bars, actions, lambda b: bar_features(b, name), tz)


def _xs(bars: pl.DataFrame, actions: pl.DataFrame | None, tz: str) -> pl.DataFrame:
    from feature_store.cross_section import cross_section_features

    return cross_section_features(bars, actions, tz)


def first_known_closes(bars: pl.DataFrame, actions: pl.DataFrame | None, tz: str) -> pl.DataFrame:
    """A close series rebuilt from each bar's 1-bar log return AS FIRST KNOWN (point-in-time adjusted).

    Recursive models (regime filters) consume this stream once, as a live system would, instead of
    re-running over a history restated by every later corporate action.
    """
    rets = pit_features(bars, actions, lambda b: bar_features(b, "bar_v1", ("ret_1",)), tz)
    close = pl.col("ret_1").fill_null(0.0).cum_sum().over("symbol_id").exp()
    return rets.select("symbol_id", "ts", "known_at", close.alias("close")).with_columns(
        *(pl.col("close").alias(c) for c in ("open", "high", "low")), pl.lit(0.0).alias("volume")
    )


def _regime(bars: pl.DataFrame, actions: pl.DataFrame | None, tz: str) -> pl.DataFrame:
    from feature_store.regime import regime_features

    return regime_features(first_known_closes(bars, actions, tz))


# Sets whose rows depend on other symbols (ranks within the universe): never computed per symbol.
CROSS_SECTIONAL = frozenset({"xs_v1"})

COMPUTE: dict[str, SetCompute] = {
    "bar_v1": _bars_set("bar_v1"),
    "bar_1m_v1": _bars_set("bar_1m_v1"),
    "xs_v1": _xs,
    "regime_v1": _regime,
}


def compute_set(name: str, bars: pl.DataFrame, actions: pl.DataFrame | None = None, tz: str = "America/New_York"):
    """Rows of feature set ``name`` for raw ``bars`` (one timeframe)."""
    try:
        fn = COMPUTE[name]
    except KeyError:
        raise ConfigError(f"no batch featurizer for feature set {name!r}; have {sorted(COMPUTE)}") from None
    return fn(bars, actions, tz)


def in_window(frame: pl.DataFrame, start: datetime | None, end: datetime | None) -> pl.DataFrame:
    """Rows of ``frame`` with ts in [start, end] (an open side when None)."""
    if start is not None:
        frame = frame.filter(pl.col("ts") >= pl.lit(start).cast(TS_NS))
    if end is not None:
        frame = frame.filter(pl.col("ts") <= pl.lit(end).cast(TS_NS))
    return frame


def featurize_window(
    bars: pl.DataFrame,
    actions: pl.DataFrame | None,
    feature_sets: list[str],
    start: datetime | None,
    end: datetime | None,
    tz: str = "America/New_York",
    chain: pl.DataFrame | None = None,
) -> dict[str, pl.DataFrame]:
    """Feature rows with ts in [start, end] per set, computed on all ``bars`` up to ``end``.

    ``chain`` (bronze.options_chain rows) is needed by ``options_v1`` only.
    """
    hist = in_window(bars.with_columns(pl.col("ts").cast(TS_NS)), None, end)
    out = {}
    for name in feature_sets:
        if name == "options_v1":
            if chain is None:
                raise ConfigError("feature set options_v1 needs the option chain (bronze.options_chain)")
            from feature_store.options import options_features

            rows = options_features(first_known_closes(hist, actions, tz), chain)
        else:
            rows = compute_set(name, hist, actions, tz)
        out[name] = in_window(rows, start, end)
    return out


def label_window(
    bars: pl.DataFrame,
    actions: pl.DataFrame | None,
    spec: LabelSpec,
    start: datetime | None,
    end: datetime | None,
    tz: str = "America/New_York",
    quotes: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Label rows with ts in [start, end] (their outcomes may lie after ``end``: labels look forward).

    ``quotes`` feed a mid-quote label set (``LabelSpec.price == "mid"``).
    """
    return in_window(make_labels(bars, spec, actions, tz, quotes=quotes), start, end)
