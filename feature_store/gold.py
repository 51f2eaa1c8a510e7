"""The gold tables this package writes: gold.features (bar-level sets), gold.labels and gold.label_sets.

gold.features holds one row per (symbol_id, tf, feature_set, ts) and one typed column per feature of
the sets in ``GOLD_FEATURE_SETS`` (their union, in registry order; a set leaves the others' columns
null). Columns derive from the registry, so a feature is declared once. Labels live apart in
gold.labels and are joined to features only by ``feature_store.training_set``; the discretizer edges
of each label set are stored beside them in gold.label_sets.

Writes replace the (feature_set or label_set, symbols, ts range) window: re-running a window leaves
the tables unchanged.
"""

from __future__ import annotations

import polars as pl
import pyarrow as pa

from feature_store.registry import get
from lakehouse.predicates import Predicate, between, where
from lakehouse.schema import TS, TableSpec, col
from lakehouse.storage import Lake, ts_value
from lakehouse.tables import register

STR = pa.large_string()
GOLD_FEATURE_SETS = ("bar_v1", "bar_1m_v1", "xs_v1", "regime_v1", "meta_v1", "options_v1", "curve_v1", "tick_v2")
KEY_COLUMNS = ("symbol_id", "tf", "ts", "known_at", "feature_set")


def _feature_columns() -> list[str]:
    from feature_store.registry import FEATURE_SETS, load_all

    load_all()
    out: list[str] = []
    for name in GOLD_FEATURE_SETS:
        if name in FEATURE_SETS:
            out.extend(n for n in get(name).names if n not in out)
    return out


FEATURE_COLUMNS: tuple[str, ...] = tuple(_feature_columns())

GOLD_FEATURES = register(
    TableSpec(
        "gold",
        "features",
        (
            col("symbol_id", STR),
            col("tf", STR),
            col("ts", TS, doc="bar END the features describe"),
            col("known_at", TS, doc="when every input of the row was known (running max over its history)"),
            col("feature_set", STR),
            *(col(n, pa.float64(), nullable=True, doc="null during warm-up") for n in FEATURE_COLUMNS),
        ),
        keys=("symbol_id", "tf", "feature_set", "ts"),
        partition_by=("feature_set",),
        lineage=False,
        doc="batch bar-level features, one column per registered feature (feature_store.registry)",
    )
)

GOLD_LABELS = register(
    TableSpec(
        "gold",
        "labels",
        (
            col("symbol_id", STR),
            col("tf", STR),
            col("ts", TS, doc="decision time: the bar END the forward return starts from"),
            col("known_at", TS, doc="when the outcome became known (the END bar's known_at)"),
            col("label_set", STR),
            col("horizon", pa.int64(), doc="bars (bar data) or seconds (1 s data)"),
            col("log_return", pa.float64()),
            col("bucket", pa.int64(), non_negative=True),
            col("vol", pa.float64(), nullable=True, doc="the vol that scaled the edges (vol-scaled sets)"),
        ),
        keys=("symbol_id", "tf", "label_set", "horizon", "ts"),
        partition_by=("label_set",),
        lineage=False,
        doc="forward log returns and their buckets; kept apart from features",
    )
)

GOLD_LABEL_SETS = register(
    TableSpec(
        "gold",
        "label_sets",
        (
            col("label_set", STR),
            col("tf", STR),
            col("horizons", pa.list_(pa.int64())),
            col("discretizer", STR, doc="Discretizer JSON: edges, unit, scale, vol scaling"),
            col("price", STR, nullable=True, doc="what the returns are of: trade (bar close) or mid (quote mid)"),
        ),
        keys=("label_set",),
        lineage=False,
        doc="the discretizer edges each label set was bucketed with",
    )
)


def _window(rows: pl.DataFrame, **eq) -> Predicate:
    lo, hi = ts_value(rows["ts"].min()), ts_value(rows["ts"].max())
    return where(symbol_id=rows["symbol_id"].unique().sort().to_list(), **eq) & between("ts", lo, hi)


def write_features(lake: Lake, features: pl.DataFrame) -> int:
    """Replace the (feature_set, symbols, ts range) window of gold.features with ``features``."""
    if features.height == 0:
        return 0
    sets = features["feature_set"].unique().to_list()
    n = 0
    for name in sets:
        rows = features.filter(pl.col("feature_set") == name)
        missing = [c for c in FEATURE_COLUMNS if c not in rows.columns]
        rows = rows.with_columns(pl.lit(None, pl.Float64).alias(c) for c in missing).select(GOLD_FEATURES.column_names)
        n += lake.replace_window(GOLD_FEATURES, rows, _window(rows, feature_set=name))
    return n


def read_features(lake: Lake, feature_set: str, symbols: list[str] | None = None) -> pl.DataFrame:
    """gold.features rows of one set, with only that set's columns."""
    fs = get(feature_set)
    frame = lake.read(GOLD_FEATURES, columns=[*KEY_COLUMNS, *fs.names])
    frame = frame.filter(pl.col("feature_set") == feature_set)
    if symbols:
        frame = frame.filter(pl.col("symbol_id").is_in(symbols))
    return frame.sort("symbol_id", "ts")


def write_labels(lake: Lake, labels: pl.DataFrame, label_set_row: dict) -> int:
    """Replace the (label_set, symbols, ts range) window of gold.labels; upsert the label set's edges."""
    lake.upsert(GOLD_LABEL_SETS, pl.DataFrame([label_set_row], schema_overrides={"horizons": pl.List(pl.Int64)}))
    if labels.height == 0:
        return 0
    rows = labels.select(GOLD_LABELS.column_names)
    return lake.replace_window(GOLD_LABELS, rows, _window(rows, label_set=label_set_row["label_set"]))


def read_labels(lake: Lake, label_set: str) -> pl.DataFrame:
    """gold.labels rows of one label set."""
    return lake.read(GOLD_LABELS).filter(pl.col("label_set") == label_set).sort("symbol_id", "horizon", "ts")
