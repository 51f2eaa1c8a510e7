"""Canary flow: the champion against the one it replaced, on the live windows since its promotion.

Thin: the live windows are gold rows whose decision time falls after the current champion was
promoted (the ``promotion.at_ns`` tag ``apply_decision`` writes) and whose every horizon has been
realised by the run's scheduled start, so neither model saw them when it was judged. Both versions
are run from their ONNX files on the same windows; ``training.promotion.canary_after_promotion``
rolls the champion back (alias and the scorer's KV pointer) when its worst-horizon ECE rose or its
log score fell past the strategy's ``promotion.canary`` margins. With fewer than ``min_samples``
windows nothing is decided. The champion's live ECE goes to gold.monitoring (``ece``, source
``canary``) for the API's /metrics.
"""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
from prefect import flow, get_run_logger

from core.errors import ConfigError
from core.profile import load_profile
from core.strategy import DEFAULT_STRATEGY, load_strategy
from core.timetypes import NS_PER_S

PROMOTED_AT_TAG = "promotion.at_ns"


def live_windows(lake, meta, label_set: str, since: datetime, as_of: datetime, symbols: list[str] | None = None):
    """(X (N, L, F), y (N, H)) of windows decided in (since, as_of - longest horizon], realised by ``as_of``."""
    import pyarrow.compute as pc

    from feature_store.gold import GOLD_FEATURES, read_labels
    from feature_store.training_set import to_arrays, training_set
    from lakehouse.storage import ts_value
    from training.candidate import windows

    names = list(meta.feature_names)
    if meta.horizon_unit != "s":  # bar horizons count bars; their realised time needs the calendar, not a fixed step
        raise ConfigError(f"{meta.model_name}: the canary judges horizons in seconds, not {meta.horizon_unit!r}")
    last_decision = as_of - timedelta(seconds=max(meta.horizons))
    lead = timedelta(seconds=meta.lookback)  # rows before ``since`` only fill the first windows
    flt = (pc.field("feature_set") == meta.feature_set) & (pc.field("ts") > ts_value(since - lead))
    flt &= pc.field("ts") <= ts_value(last_decision)
    if symbols:
        flt &= pc.field("symbol_id").isin(symbols)
    feats = lake.read(GOLD_FEATURES, filter=flt)  # every column of the set: the as-of join checks them
    labels = read_labels(lake, label_set).filter(pl.col("known_at") <= as_of)  # outcomes realised by as_of
    empty = np.zeros((0, meta.lookback, len(names)), np.float32), np.zeros((0, len(meta.horizons)), np.int64)
    if feats.height == 0 or labels.height == 0:
        return empty
    frame = training_set(feats, labels, since - lead, last_decision + timedelta(microseconds=1), meta.horizons)
    x, y, keys = to_arrays(frame, names, meta.horizons)
    order = np.lexsort((keys["ts"].to_numpy(), keys["symbol_id"].to_numpy()))
    X, ends = windows(x[order], keys["symbol_id"].to_numpy()[order], meta.lookback)
    decided = keys["ts"].dt.epoch("ns").to_numpy()[order][ends]
    keep = decided > ts_value(since)
    return X[keep], y[order][ends][keep]


@flow(name="canary")
def canary(
    model_name: str | None = None,
    as_of: datetime | None = None,
    label_set: str | None = None,
    profile: str = "local",
    strategy_path: str | None = None,
    lake_root: str | None = None,
    nats_url: str | None = None,
    symbols: list[str] | None = None,
) -> dict:
    """Compare the champion with its predecessor on the live windows; roll it back if it is worse."""
    from feature_store.model_contract import read_metadata
    from flows.watermarks import scheduled_start
    from lakehouse.monitoring import record_metrics
    from lakehouse.storage import Lake
    from training.promotion import canary_after_promotion, nats_publisher
    from training.tracking import CHAMPION, Tracker

    log = get_run_logger()
    prof = load_profile(profile)
    strategy = load_strategy(Path(strategy_path) if strategy_path else DEFAULT_STRATEGY)
    specs = {m.name: m for m in strategy.models}
    model_name = model_name or strategy.models[0].name
    if label_set is None:  # the label set training used by default for the model's kind
        if model_name not in specs:
            raise ConfigError(f"canary: model {model_name!r} is not in the strategy; pass its label_set")
        label_set = "ret_tick_v1" if specs[model_name].kind == "tick" else "ret_bars_v1"
    tracker = Tracker.from_profile(prof)
    history, champion = tracker.history(model_name), tracker.alias(model_name, CHAMPION)
    out: dict = {"model_name": model_name, "version": champion}
    if champion is None or len(history) < 2:
        return {**out, "skipped": "no earlier champion to compare with"}
    promoted_at = tracker.version_tags(model_name, champion).get(PROMOTED_AT_TAG)
    if promoted_at is None:
        return {**out, "skipped": f"v{champion} carries no {PROMOTED_AT_TAG} tag (promoted before the canary existed)"}
    since = datetime.fromtimestamp(int(promoted_at) / NS_PER_S, tz=UTC)
    as_of = as_of or scheduled_start()
    models_dir = Path(prof.state_dir) / "models"
    with tempfile.TemporaryDirectory() as work:
        meta = read_metadata(tracker.materialise(model_name, champion, Path(work) / "new"))
        old = read_metadata(tracker.materialise(model_name, history[-2], Path(work) / "old"))
        inputs = ("feature_names", "lookback", "horizons", "bucket_edges_bps")
        if any(getattr(meta, k) != getattr(old, k) for k in inputs):
            return {**out, "skipped": f"v{history[-2]} reads other inputs or buckets than v{champion}"}
        X, y = live_windows(Lake.from_profile(prof, root=lake_root), meta, label_set, since, as_of, symbols)
    out |= {"previous": history[-2], "since": since.isoformat(), "windows": len(X)}
    cfg = strategy.promotion.canary
    if len(X) < cfg.min_samples:
        log.info("%s v%s: %d live windows since %s, %d needed", model_name, champion, len(X), since, cfg.min_samples)
        return {**out, "waiting": f"{len(X)} live windows, {cfg.min_samples} needed"}
    now_ns = int(as_of.timestamp() * NS_PER_S)
    publish = nats_publisher(nats_url or prof.nats.url)
    result = canary_after_promotion(
        tracker, model_name, X, y, cfg, models_dir=models_dir, publish=publish, promoted_at_ns=now_ns
    )
    record_metrics(
        Lake.from_profile(prof, root=lake_root), {"ece": result.ece_challenger}, ts=as_of, source="canary",
        run_id=f"canary-{model_name}-v{champion}-{as_of:%Y%m%dT%H%M%S}", model=model_name, model_version=champion,
    )  # fmt: skip
    log.info("canary of %s v%s vs v%s on %d windows: %s", model_name, champion, history[-2], len(X), result.reasons)
    return {**out, "rollback": result.rollback, "reasons": list(result.reasons), "result": result.__dict__}
