"""Point-in-time training sets: labels joined to the features known at each decision time.

A training row is one label (symbol, ts, horizon) plus the latest feature row of that symbol whose
``known_at <= ts`` (an as-of join on ``known_at``, never on ``ts``): a feature computed from a bar
that arrived late is used only from the moment it arrived. This is the only place labels meet
features. Several feature sets are joined side by side, each as of its own ``known_at``.

    frame = training_set([bar_rows, regime_rows], labels, start, end)
    X, y = to_arrays(frame, names, horizons)          # (N, F) float32, (N, H) int64
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import numpy as np
import polars as pl

from core.errors import TableError
from feature_store.registry import get
from lakehouse.corporate_actions import TS_NS

LABEL_COLUMNS = ("log_return", "bucket", "vol")


def _feature_frame(features: pl.DataFrame) -> tuple[str, pl.DataFrame]:
    sets = features["feature_set"].unique().to_list()
    if len(sets) != 1:
        raise TableError(f"training_set: pass one frame per feature set, got sets {sets}")
    names = get(sets[0]).names
    missing = [n for n in names if n not in features.columns]
    if missing:
        raise TableError(f"training_set: feature set {sets[0]} frame lacks {missing}")
    clash = [c for c in LABEL_COLUMNS if c in features.columns]
    if clash:
        raise TableError(f"training_set: feature frame carries label columns {clash}")
    frame = features.select(
        "symbol_id",
        pl.col("known_at").cast(TS_NS).alias(f"known_at_{sets[0]}"),
        pl.col("ts").cast(TS_NS).alias(f"ts_{sets[0]}"),
        *names,
    )
    return sets[0], frame.sort(f"known_at_{sets[0]}")


def training_set(
    features: pl.DataFrame | Sequence[pl.DataFrame],
    labels: pl.DataFrame,
    start: datetime | None = None,
    end: datetime | None = None,
    horizons: Sequence[int] | None = None,
) -> pl.DataFrame:
    """Join ``labels`` with ts in [start, end) to the features known at their ts (as of known_at).

    ``features``: gold.features rows, one frame per feature set. Returns the label keys
    (symbol_id, tf, ts, horizon, label known_at), for each set ``ts_<set>`` / ``known_at_<set>`` of
    the feature row used, the feature columns, then log_return and bucket. Labels with no feature
    row known yet are dropped.
    """
    frames = [features] if isinstance(features, pl.DataFrame) else list(features)
    lab = labels.with_columns(pl.col("ts").cast(TS_NS), pl.col("known_at").cast(TS_NS))
    if start is not None:
        lab = lab.filter(pl.col("ts") >= pl.lit(start).cast(TS_NS))
    if end is not None:
        lab = lab.filter(pl.col("ts") < pl.lit(end).cast(TS_NS))
    if horizons is not None:
        lab = lab.filter(pl.col("horizon").is_in(list(horizons)))
    out = lab.rename({"known_at": "label_known_at"}).sort("ts")
    for f in frames:
        name, frame = _feature_frame(f)
        out = out.join_asof(
            frame,
            left_on="ts",
            right_on=f"known_at_{name}",
            by="symbol_id",
            strategy="backward",
            check_sortedness=False,
        )
        out = out.filter(pl.col(f"known_at_{name}").is_not_null())
    keys = ["symbol_id", "tf", "ts", "horizon", "label_known_at"]
    rest = [c for c in out.columns if c not in keys and c not in LABEL_COLUMNS and c != "label_set"]
    return out.select(*keys, *rest, *[c for c in ("log_return", "bucket") if c in out.columns]).sort(
        "symbol_id", "horizon", "ts"
    )


def to_arrays(
    frame: pl.DataFrame, names: Sequence[str], horizons: Sequence[int], dropna: bool = True
) -> tuple[np.ndarray, np.ndarray, pl.DataFrame]:
    """Wide arrays for a model: X (N, F) float32 in ``names`` order, y (N, H) int64 buckets, and the row keys.

    One row per (symbol_id, ts) having a label at every horizon; ``dropna`` drops rows with a null
    feature (warm-up).
    """
    wide = frame.pivot(on="horizon", index=["symbol_id", "ts", *names], values="bucket", aggregate_function="first")
    hcols = [str(h) for h in horizons]
    missing = [h for h in hcols if h not in wide.columns]
    if missing:
        raise TableError(f"to_arrays: no labels at horizons {missing}")
    wide = wide.drop_nulls(hcols)
    if dropna:
        wide = wide.drop_nulls(list(names))
    wide = wide.sort("ts", "symbol_id")
    x = wide.select(names).to_numpy().astype(np.float32)
    y = wide.select(hcols).to_numpy().astype(np.int64)
    return x, y, wide.select("symbol_id", "ts")
