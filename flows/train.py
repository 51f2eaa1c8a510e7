"""Train flow: gold windows -> model + baselines -> calibrate -> export -> MLflow run + registered version.

Thin: every step is a domain function (training.dataset, training.candidate, training.model_card,
training.tracking). The new version gets the ``challenger`` alias; ``flows/promote.py`` judges it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from prefect import flow

from core.errors import ConfigError
from core.profile import load_profile
from core.strategy import DEFAULT_STRATEGY, load_strategy


def _spec(strategy, model_name: str | None):
    specs = {m.name: m for m in strategy.models}
    if model_name is None:
        return strategy.models[0]
    if model_name not in specs:
        raise ConfigError(f"model {model_name!r} not in the strategy (has {sorted(specs)})")
    return specs[model_name]


@flow(name="train")
def train(
    model_name: str | None = None,
    label_set: str | None = None,
    profile: str = "local",
    strategy_path: str | None = None,
    symbols: list[str] | None = None,
    test_days: int = 1,
    cal_days: int = 1,
    fast: bool = False,
    timestamp_ms: int = 0,
) -> dict:
    """Train the strategy's model ``model_name`` on gold and register it as the challenger."""
    from lakehouse.storage import Lake
    from training.tracking import Tracker

    prof = load_profile(profile)
    strategy = load_strategy(Path(strategy_path) if strategy_path else DEFAULT_STRATEGY)
    spec = _spec(strategy, model_name)
    label_set = label_set or ("ret_tick_v1" if spec.kind == "tick" else "ret_bars_v1")
    from training.dataset import load_windows

    data = load_windows(Lake.from_profile(prof), spec.feature_set, label_set, spec.horizons, spec.lookback, symbols)
    return train_on_arrays(
        spec,
        data,
        Tracker.from_profile(prof),
        Path(prof.state_dir) / "exports",
        test_days=test_days,
        cal_days=cal_days,
        fast=fast,
        timestamp_ms=timestamp_ms,
        label_set=label_set,
    )


def train_on_arrays(spec, data: dict, tracker, export_root: Path, **kw) -> dict:
    """The flow body on arrays (X, y, days, names, data_versions; ``keys`` when known): also what tests
    and benchmarks call."""
    from feature_store.model_contract import ModelMetadata
    from training.candidate import build_candidate, day_split
    from training.factory import baselines, make_model
    from training.model_card import model_card, write_card
    from training.models.base import Buckets, default_edges_bps

    edges = default_edges_bps(spec.buckets.count, spec.buckets.lo_bps, spec.buckets.hi_bps)
    buckets = Buckets(edges)
    version = tracker.next_version(spec.name)
    meta = ModelMetadata(
        model_name=spec.name,
        model_version=version,
        feature_set=spec.feature_set,
        feature_names=tuple(data["names"]),
        lookback=spec.lookback,
        horizons=tuple(spec.horizons),
        horizon_unit="s" if spec.kind == "tick" else "bars",
        tf=spec.timeframe,
        bucket_edges_bps=tuple(float(e) for e in edges),
        calibration_temperatures=(1.0,) * len(spec.horizons),
        conformal_qhat_bps=(0.0,) * len(spec.horizons),
    )
    split = day_split(data["days"], kw.get("test_days", 1), kw.get("cal_days", 1), gap_steps=max(spec.horizons))
    model = make_model(spec.architecture, buckets, data["names"], fast=kw.get("fast", False))
    base = baselines(spec.kind, buckets, data["names"], spec.horizons)
    out_dir = Path(export_root) / spec.name / f"v{version}"
    keys = data.get("keys")  # windows interleave symbols in time: the gates thin and block per symbol
    series = None if keys is None else np.unique(keys["symbol_id"].to_numpy(), return_inverse=True)[1]
    cand = build_candidate(data["X"], data["y"], data["days"], model, base, meta, out_dir, split, series=series)
    method = (
        f"{spec.architecture} ({type(model).__name__}), {spec.kind} model, temperature-scaled"
        + (", pooled with EWMA-t per horizon" if cand.blend_weights else "")
        + (", P(up) slope-calibrated" if cand.up_slopes else "")
        + ", split-conformal"
    )
    card = model_card(
        cand.meta,
        method=method,
        data_versions=data["data_versions"],
        metrics=cand.metrics,
        baselines=sorted(base),
    )
    write_card(out_dir / "MODEL_CARD.md", card)
    evidence = cand.save_evidence(out_dir.parent / f"v{version}.evidence.npz")
    params = {
        "architecture": spec.architecture,
        "lookback": spec.lookback,
        "horizons": list(spec.horizons),
        "n_train": int(split.train.sum()),
        "n_cal": int(split.cal.sum()),
        "n_test": int(split.test.sum()),
        "label_set": kw.get("label_set", ""),
        "temperatures": list(cand.meta.calibration_temperatures),
        "up_slopes": list(cand.up_slopes or ()),
        "blend_weights": list(cand.blend_weights or ()),
    }
    run_id = tracker.log_run(
        spec.name,
        f"{spec.name}-v{version}",
        params=params,
        metrics=cand.metrics,
        data_versions=data["data_versions"],
        artifacts={"model": out_dir, "evidence": evidence},
        timestamp_ms=kw.get("timestamp_ms", 0),
    )
    registered = tracker.register(run_id, spec.name, tags={"onnx_sha256": _sha(cand.onnx_path)})
    return {
        "model_name": spec.name,
        "version": registered,
        "run_id": run_id,
        "onnx": str(cand.onnx_path),
        "metrics": {k: v for k, v in cand.metrics.items() if not np.isnan(v)},
    }


def _sha(path: Path) -> str:
    from feature_store.model_contract import sha256_file

    return sha256_file(path)
