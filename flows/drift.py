"""Drift check flow: recent gold features and the champion's forecasts on them vs its training reference.

Thin: the reference is the champion's registered evidence (the held-out windows it was judged on and
its own forecasts there, ``training.candidate.load_evidence``); the current sample is the last
``window_minutes`` of gold.features up to the run's scheduled start (or gold's newest row, if
earlier), cut into the model's windows and run through its ONNX file. ``training.drift`` computes
PSI and KL per feature and per forecast summary; a column over the strategy's thresholds emits
``mps.drift.detected`` (the ``train`` deployment's trigger retrains). The worst PSI goes to
gold.monitoring as ``drift_psi`` for the API's /metrics.
"""

from __future__ import annotations

import tempfile
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from prefect import flow, get_run_logger

from core.profile import load_profile
from core.strategy import DEFAULT_STRATEGY, load_strategy


def recent_windows(lake, feature_set: str, names: tuple[str, ...], lookback: int, as_of: datetime, minutes: int):
    """(N, L, F) windows of the model's ``names`` ending in the last ``minutes`` of gold up to ``as_of``.

    The span ends at gold's newest row at or before ``as_of`` (a lake that stopped updating is
    still checked on its last data); earlier rows fill the first windows. Returns (X, start, end).
    """
    import pyarrow.compute as pc

    from feature_store.gold import GOLD_FEATURES
    from lakehouse.storage import ts_value
    from training.candidate import windows

    flt = (pc.field("feature_set") == feature_set) & (pc.field("ts") <= ts_value(as_of))
    feats = lake.read(GOLD_FEATURES, columns=["symbol_id", "ts", *names], filter=flt)
    feats = feats.drop_nulls(list(names)).sort("symbol_id", "ts")
    if feats.height == 0:
        return np.zeros((0, lookback, len(names)), np.float32), as_of - timedelta(minutes=minutes), as_of
    ts = feats["ts"].dt.epoch("ns").to_numpy()
    end_ns = int(ts.max())
    end = datetime.fromtimestamp(end_ns / 1e9, tz=as_of.tzinfo)
    X, ends = windows(feats.select(names).to_numpy().astype(np.float32), feats["symbol_id"].to_numpy(), lookback)
    keep = ts[ends] > end_ns - minutes * 60 * 1_000_000_000
    return X[keep], end - timedelta(minutes=minutes), end


@flow(name="drift-check")
def drift_check(
    model_name: str | None = None,
    as_of: datetime | None = None,
    window_minutes: int = 60,
    profile: str = "local",
    strategy_path: str | None = None,
    lake_root: str | None = None,
    max_windows: int = 20_000,
) -> dict:
    """Compare the last ``window_minutes`` of gold with the champion's reference; emit the drift event if it crossed."""
    from flows.watermarks import scheduled_start
    from lakehouse.monitoring import record_metrics
    from lakehouse.storage import Lake
    from training.candidate import load_evidence
    from training.drift import drift_report, emit_drift_event, window_columns
    from training.onnx_export import run_onnx
    from training.tracking import CHAMPION, Tracker

    log = get_run_logger()
    prof = load_profile(profile)
    strategy = load_strategy(Path(strategy_path) if strategy_path else DEFAULT_STRATEGY)
    model_name = model_name or strategy.models[0].name
    tracker = Tracker.from_profile(prof)
    version = tracker.alias(model_name, CHAMPION)
    if version is None:
        log.info("%s has no champion: nothing to check", model_name)
        return {"model_name": model_name, "skipped": "no champion"}
    lake = Lake.from_profile(prof, root=lake_root)
    as_of = as_of or scheduled_start()
    from feature_store.model_contract import read_metadata

    with tempfile.TemporaryDirectory() as work:
        onnx = tracker.materialise(model_name, version, Path(work) / "model")
        meta = read_metadata(onnx)
        ev = load_evidence(tracker.evidence(model_name, version, Path(work) / "evidence"))
        X, start, end = recent_windows(lake, meta.feature_set, meta.feature_names, meta.lookback, as_of, window_minutes)
        if len(X) == 0:
            log.info("no gold %s windows in (%s, %s]", meta.feature_set, start, end)
            return {"model_name": model_name, "version": version, "skipped": "no recent windows"}
        X = X[np.linspace(0, len(X) - 1, min(len(X), max_windows)).astype(int)]
        edges = np.asarray(meta.bucket_edges_bps)
        reference = window_columns(ev["X"], meta.feature_names, ev["probs.model"], edges)
        current = window_columns(X, meta.feature_names, run_onnx(onnx, X), edges)
    report = drift_report(reference, current, strategy.promotion.drift)
    event = emit_drift_event(model_name, report)
    run_id = f"drift-{model_name}-v{version}-{end:%Y%m%dT%H%M%S}"
    record_metrics(
        lake, {"drift_psi": max(report.psi.values())}, ts=end, source="drift", run_id=run_id, model=model_name,
        model_version=version,
    )  # fmt: skip
    log.info("drift of %s v%s over %d windows: %s", model_name, version, len(X), report.drifted or "none")
    return {
        "model_name": model_name,
        "version": version,
        "window": [start.isoformat(), end.isoformat()],
        "windows": int(len(X)),
        "drifted": list(report.drifted),
        "worst_psi": max(report.psi.values()),
        "event_id": str(event.id) if event is not None else None,
    }
