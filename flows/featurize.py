"""Build gold.features and gold.labels for a window from silver raw bars and bronze corporate actions.

Thin flow: read silver.bars (``adjustment = raw``, one timeframe) up to the window end and every
known corporate action (and the option chain for ``options_v1``), call ``feature_store.featurize``
(point-in-time adjustment happens there), and replace the window's rows in gold
(``feature_store.gold``), so re-running a window leaves the tables unchanged.

``curve_v1`` reads the futures side of the lake instead: bronze.futures_contracts and the contracts'
trade bars (one vendor per bar, the strategy's vendor priority, as the continuous-futures flow
does). A lake with no futures contracts writes no curve rows; that is not an error.

With ``catch_up`` (what the scheduled deployment runs) and no bounds, the window runs from the
earliest last gold row of the feature sets to silver's last bar (``flows.watermarks``); a run with
nothing new writes nothing.

Scale-out (DESIGN section 9): per-symbol feature sets depend only on each symbol's own bars,
actions and chain, so ``chunks`` > 1 computes them in that many tasks of whole symbols on the flow's
task runner; with Prefect's ``DaskTaskRunner`` (a LocalCluster of processes, or a scheduler address
in production) they fan out over the cluster with the single-process result. Cross-sectional sets
(``xs_v1``: ranks within the universe) need every symbol and run once in the flow.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import polars as pl
import pyarrow.compute as pc
from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from core.errors import ConfigError
from core.profile import load_profile
from core.strategy import load_strategy
from feature_store.curve import CURVE_V1, curve_features
from feature_store.discretize import Discretizer
from feature_store.featurize import CROSS_SECTIONAL, featurize_window, in_window, label_window
from feature_store.gold import GOLD_FEATURES, write_features, write_labels
from feature_store.labels import LabelSpec
from feature_store.registry import get as registered_set
from flows.watermarks import featurize_window as new_window
from lakehouse.futures_continuous import one_delivery_per_key
from lakehouse.storage import Lake, ts_value
from lakehouse.tables import (
    BRONZE_BARS,
    BRONZE_CORPORATE_ACTIONS,
    BRONZE_FUTURES_CONTRACTS,
    BRONZE_OPTIONS_CHAIN,
    SILVER_BARS,
)


@task
def read_bars(lake: Lake, tf: str, symbols: list[str] | None, end: datetime | None) -> pl.DataFrame:
    """Raw silver bars of ``tf`` (and ``symbols``) up to ``end``."""
    f = (pc.field("tf") == tf) & (pc.field("adjustment") == "raw")
    if symbols:
        f = f & pc.field("symbol_id").isin(symbols)
    if end is not None:
        f = f & (pc.field("ts") <= ts_value(end))
    cols = ["symbol_id", "tf", "ts", "open", "high", "low", "close", "volume", "vwap", "known_at"]
    return lake.read(SILVER_BARS, columns=cols, filter=f).sort("symbol_id", "ts")


@task
def read_actions(lake: Lake, symbols: list[str]) -> pl.DataFrame:
    """Every corporate action of ``symbols`` (the featurizer applies only those known in time)."""
    acts = lake.read(BRONZE_CORPORATE_ACTIONS, filter=pc.field("symbol_id").isin(symbols))
    return acts.unique(["symbol_id", "ex_date", "kind"], keep="first", maintain_order=True)


@task
def read_chain(lake: Lake, symbols: list[str]) -> pl.DataFrame:
    """Option chain snapshots of ``symbols`` (for ``options_v1``)."""
    return lake.read(BRONZE_OPTIONS_CHAIN, filter=pc.field("underlying").isin(symbols))


@task
def read_curve_inputs(
    lake: Lake, tf: str, end: datetime | None, priority: list[str]
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Futures contract definitions and their ``tf`` trade bars up to ``end`` (empty when the lake has none)."""
    if not lake.exists(BRONZE_FUTURES_CONTRACTS):
        return pl.DataFrame(), pl.DataFrame()
    contracts = lake.read(BRONZE_FUTURES_CONTRACTS).unique("contract", keep="first", maintain_order=True)
    f = pc.field("symbol_id").isin(contracts["contract"].to_list()) & (pc.field("tf") == tf)
    f = f & (pc.field("kind") == "trade")
    if end is not None:
        f = f & (pc.field("ts") <= ts_value(end))
    cols = ["source", "symbol_id", "tf", "ts", "close"]
    bars = one_delivery_per_key(lake.read(BRONZE_BARS, columns=cols, filter=f), ["symbol_id", "tf", "ts"], priority)
    return contracts, bars.with_columns(pl.col("ts").alias("known_at"))


def _curve_rows(
    lake: Lake, tf: str, start: datetime | None, end: datetime | None, symbols: list[str] | None
) -> pl.DataFrame:
    contracts, bars = read_curve_inputs(lake, tf, end, load_strategy().universe.sources)
    if contracts.height == 0 or bars.height == 0:
        return pl.DataFrame()
    rows = in_window(curve_features(bars, contracts), start, end).with_columns(pl.lit(tf).alias("tf"))
    return rows.filter(pl.col("symbol_id").is_in(symbols)) if symbols else rows


# one group of symbols: its bars, actions and option chain only
featurize_symbols = task(name="featurize-symbols", cache_policy=NO_CACHE)(featurize_window)


def featurize_by_symbol(
    bars: pl.DataFrame,
    actions: pl.DataFrame | None,
    feature_sets: list[str],
    start: datetime | None,
    end: datetime | None,
    tz: str,
    chain: pl.DataFrame | None,
    chunks: int,
) -> dict[str, pl.DataFrame]:
    """Per-symbol feature sets for every symbol of ``bars``, in ``chunks`` tasks of whole symbols.

    A per-symbol feature reads only its symbol's bars, actions and chain, so the union of the
    groups' rows equals one call over all symbols (tests/flows/test_featurize_parallel.py).
    """
    symbols = sorted(bars["symbol_id"].unique().to_list())
    if chunks <= 1 or len(symbols) < 2 or not feature_sets:
        return featurize_window(bars, actions, feature_sets, start, end, tz, chain)
    groups = [g.tolist() for g in np.array_split(np.array(symbols, dtype=object), min(chunks, len(symbols)))]

    def only(frame: pl.DataFrame | None, column: str, group: list[str]) -> pl.DataFrame | None:
        return None if frame is None else frame.filter(pl.col(column).is_in(group))

    futures = [
        featurize_symbols.submit(
            bars.filter(pl.col("symbol_id").is_in(g)),
            only(actions, "symbol_id", g),
            feature_sets,
            start,
            end,
            tz,
            only(chain, "underlying", g),
        )  # fmt: skip
        for g in groups
    ]
    parts = [f.result() for f in futures]
    return {
        name: pl.concat([p[name] for p in parts], how="vertical_relaxed").sort("symbol_id", "ts")
        for name in feature_sets
    }


def _check_timeframes(bar_sets: list[str], tf: str) -> None:
    """Refuse a feature set declared for other bars: its rows would carry the declared tf, not ``tf``."""
    declared = {name: registered_set(name).tf for name in bar_sets}
    wrong = {name: set_tf for name, set_tf in declared.items() if set_tf != tf}
    if wrong:
        sets = ", ".join(f"{name} ({declared})" for name, declared in wrong.items())
        raise ConfigError(f"featurize tf={tf!r}: feature sets declared for other timeframes: {sets}")


@flow(name="featurize")
def featurize(
    start: datetime | None = None,
    end: datetime | None = None,
    tf: str = "1d",
    feature_sets: list[str] = ["bar_v1", CURVE_V1.name],
    symbols: list[str] | None = None,
    label_set: str | None = "ret_bars_v1",
    label_horizons: list[int] = [1, 5, 21],
    tz: str = "America/New_York",
    lake_root: str | None = None,
    profile: str = "local",
    catch_up: bool = False,
    chunks: int = 1,
) -> dict[str, int]:
    """Write the window [start, end] of each feature set (and of the label set) to gold; rows written per table.

    ``chunks`` > 1 splits the symbols into that many tasks on the flow's task runner (see the module
    docstring); cross-sectional sets are computed over every symbol at once either way.

    With ``catch_up`` and no bounds: the silver bars gold has not featurized yet (nothing: no rows).
    """
    _check_timeframes([name for name in feature_sets if name != CURVE_V1.name], tf)
    lake = Lake.from_profile(load_profile(profile), root=lake_root)
    if catch_up and start is None and end is None:
        windows = [w for name in feature_sets if (w := new_window(lake, GOLD_FEATURES, name, tf, symbols))]
        if not windows:
            return {}
        starts = [w[0] for w in windows]
        start = None if None in starts else min(s for s in starts if s is not None)
        end = max(w[1] for w in windows)
    written: dict[str, int] = {}
    if CURVE_V1.name in feature_sets:
        written[f"gold.features/{CURVE_V1.name}"] = write_features(lake, _curve_rows(lake, tf, start, end, symbols))
    bar_sets = [name for name in feature_sets if name != CURVE_V1.name]
    bars = read_bars(lake, tf, symbols, None)
    if bars.height == 0:
        return {k: v for k, v in written.items() if v}
    actions = read_actions(lake, bars["symbol_id"].unique().to_list())
    chain = read_chain(lake, bars["symbol_id"].unique().to_list()) if "options_v1" in bar_sets else None
    per_symbol = [name for name in bar_sets if name not in CROSS_SECTIONAL]
    frames = featurize_by_symbol(bars, actions, per_symbol, start, end, tz, chain, chunks)
    frames |= featurize_window(bars, actions, [n for n in bar_sets if n in CROSS_SECTIONAL], start, end, tz)
    for name in bar_sets:
        written[f"gold.features/{name}"] = write_features(lake, frames[name])
    if label_set:
        spec = LabelSpec(label_set, tf, tuple(label_horizons), Discretizer.returns())
        written[f"gold.labels/{label_set}"] = write_labels(
            lake, label_window(bars, actions, spec, start, end, tz), spec.row()
        )
    return written
