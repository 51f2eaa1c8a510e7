"""The scheduled drift check: a calm hour of gold emits nothing, an hour with a shifted feature emits the event."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest
import vol_models as vm

from feature_store.gold import write_features
from lakehouse.monitoring import GOLD_MONITORING
from lakehouse.storage import Lake

NAME = "drift-volm"
NAMES = ("mid_rv_60s", "spread_bps")  # two real tick_v2 columns; the model reads feature 0 as its sigma
T0 = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)


def _features(rng, n: int, shift: float) -> np.ndarray:
    sigma = np.exp(rng.uniform(np.log(2), np.log(12), n))
    return np.stack([sigma, rng.normal(1.0, 0.2, n) + shift], axis=1).astype(np.float32)


def _gold_rows(values: np.ndarray, start: datetime) -> pl.DataFrame:
    ts = [start + timedelta(seconds=i) for i in range(len(values))]
    frame = pl.DataFrame({"symbol_id": "SIM1:SIM", "tf": "1s", "ts": ts, "known_at": ts, "feature_set": "tick_v2"})
    frame = frame.with_columns(pl.col("ts", "known_at").cast(pl.Datetime("ns", "UTC")))
    return frame.with_columns(pl.Series(n, values[:, i].astype(np.float64)) for i, n in enumerate(NAMES))


@pytest.fixture
def champion(tracker, tmp_path):
    """A registered champion (the exact vol model) whose evidence holds its reference windows and forecasts."""
    from training.onnx_export import finish_export, run_onnx
    from training.tracking import CHAMPION

    rng = np.random.default_rng(4)
    x = _features(rng, 3000, 0.0)
    X = np.stack([np.roll(x, k, axis=0) for k in range(vm.L - 1, -1, -1)], axis=1)  # (N, L, F) windows
    meta = replace(vm.meta(NAME, "1"), feature_set="tick_v2", feature_names=NAMES)
    path = finish_export(vm.vol_graph(1.0), meta, tmp_path / "export", X[:8], vm.reference(1.0), None)
    evidence = tmp_path / "v1.evidence.npz"
    np.savez_compressed(evidence, X=X, y=np.zeros((len(X), 2), np.int64), days=np.zeros(len(X)), **{
        "probs.model": run_onnx(path, X)  # the reference forecasts come from the exported file, as in training
    })  # fmt: skip
    run_id = tracker.log_run(
        "tests", "v1", params={}, metrics={"x": 1.0}, artifacts={"model": path.parent, "evidence": evidence}
    )
    tracker.register(run_id, NAME)
    tracker.set_champion(NAME, "1")
    assert tracker.alias(NAME, CHAMPION) == "1"
    return tracker


def test_drift_check_emits_the_event_on_a_shifted_feature(prefect_harness, champion, tmp_path):
    from flows.drift import drift_check

    lake_root = tmp_path / "lake"
    profile = tmp_path / "profile.yaml"
    profile.write_text(
        f"name: t\nlake: {{root: {lake_root}}}\nstate_dir: {tmp_path / 'state'}\n"
        f"mlflow: {{tracking_uri: '{champion.tracking_uri}', artifact_root: '{champion.artifact_root}'}}\n"
    )
    lake = Lake(str(lake_root))
    rng = np.random.default_rng(9)
    write_features(lake, _gold_rows(_features(rng, 1800, 0.0), T0))  # a calm half hour
    write_features(lake, _gold_rows(_features(rng, 1800, 1.0), T0 + timedelta(minutes=30)))  # spreads widen 5 sd
    calm = drift_check(NAME, as_of=T0 + timedelta(minutes=29), window_minutes=25, profile=str(profile))
    assert calm["windows"] > 1000 and calm["drifted"] == [] and calm["event_id"] is None, calm
    shifted = drift_check(NAME, as_of=T0 + timedelta(hours=2), window_minutes=25, profile=str(profile))
    assert shifted["window"][1] == (T0 + timedelta(minutes=59, seconds=59)).isoformat()  # up to gold's newest row
    assert shifted["drifted"] == ["spread_bps"] and shifted["event_id"] is not None, shifted
    assert shifted["worst_psi"] > 0.25
    monitored = lake.read(GOLD_MONITORING).filter(pl.col("source") == "drift").sort("ts")
    assert monitored["metric"].to_list() == ["drift_psi", "drift_psi"]
    assert monitored["value"][1] == pytest.approx(shifted["worst_psi"]) and monitored["value"][0] < 0.25
