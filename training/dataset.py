"""Model windows from gold: the point-in-time training set reshaped to (N, L, F) windows per symbol."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

from core.errors import TableError
from feature_store.gold import GOLD_FEATURES, GOLD_LABELS, read_features, read_labels
from feature_store.registry import get
from feature_store.training_set import to_arrays, training_set
from training.candidate import windows


def load_windows(
    lake, feature_set: str, label_set: str, horizons: Sequence[int], lookback: int, symbols: list[str] | None = None
) -> dict:
    """Return X (N, L, F), y (N, H), days (N,) int, keys (symbol_id, ts) and the Delta versions read.

    Windows never span two symbols; they are sorted by decision time so a day split is chronological.
    """
    names = get(feature_set).names
    feats = read_features(lake, feature_set, symbols)
    labels = read_labels(lake, label_set)
    if symbols:
        labels = labels.filter(pl.col("symbol_id").is_in(symbols))
    if feats.height == 0 or labels.height == 0:
        raise TableError(f"no gold rows: {feats.height} features ({feature_set}), {labels.height} labels ({label_set})")
    frame = training_set(feats, labels, horizons=horizons)
    x, y, keys = to_arrays(frame, names, horizons)
    order = np.lexsort((keys["ts"].to_numpy(), keys["symbol_id"].to_numpy()))
    x, y, keys = x[order], y[order], keys[order]
    X, ends = windows(x, keys["symbol_id"].to_numpy(), lookback)
    y, keys = y[ends], keys[ends]
    by_time = np.argsort(keys["ts"].to_numpy(), kind="stable")
    X, y, keys = X[by_time], y[by_time], keys[by_time]
    days = keys["ts"].dt.date().cast(pl.Int32).to_numpy()
    versions = {}
    for spec in (GOLD_FEATURES, GOLD_LABELS):
        info = lake.info(spec)
        versions[spec.qualified] = info.version if info else -1
    return {"X": X, "y": y, "days": days, "keys": keys, "names": tuple(names), "data_versions": versions}
