"""The canary flow on live gold windows: a champion worse than the one it replaced is rolled back
(alias and the scorer's NATS pointer); too few live windows decide nothing."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import vol_models as vm
from test_promotion import read_pointer

from feature_store.gold import write_features, write_labels
from lakehouse.monitoring import GOLD_MONITORING
from lakehouse.storage import Lake
from training.gates import Decision, GateResult
from training.promotion import apply_decision, nats_publisher
from training.tracking import CHAMPION

NAME = "volm"  # the name read_pointer looks up
NAMES = ("mid_rv_60s", "spread_bps")  # two real tick_v2 columns; the model reads feature 0 as its sigma
LABEL_SET = "ret_canary_v1"
T0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)  # the second champion's promotion
NS = pl.Datetime("ns", "UTC")


def register(tracker, tmp_path, scale: float) -> str:
    from training.onnx_export import finish_export

    version = tracker.next_version(NAME)
    meta = replace(vm.meta(NAME, version), feature_set="tick_v2", feature_names=NAMES)
    X, _, _ = vm.world(8, seed=1)
    path = finish_export(vm.vol_graph(scale), meta, tmp_path / f"export-{scale}", X, vm.reference(scale), None)
    run_id = tracker.log_run("tests", f"scale-{scale}", params={}, metrics={"x": 1.0}, artifacts={"model": path.parent})
    assert tracker.register(run_id, NAME) == version
    return version


def write_gold(lake: Lake, start: datetime, seconds: int, seed: int) -> None:
    """Per second: sigma (feature 0) and noise, and labels drawn from N(0, sigma sqrt(h)) in 1 bp buckets."""
    rng = np.random.default_rng(seed)
    sigma = np.exp(rng.uniform(np.log(2), np.log(12), seconds))
    ts = pl.Series("ts", [start + timedelta(seconds=i) for i in range(seconds)]).cast(NS)
    feats = pl.DataFrame({"symbol_id": "SIM1:SIM", "tf": "1s", "ts": ts, "known_at": ts, "feature_set": "tick_v2"})
    write_features(
        lake, feats.with_columns(pl.Series(NAMES[0], sigma), pl.Series(NAMES[1], rng.normal(1, 0.2, seconds)))
    )
    labels = []
    for h in vm.HORIZONS:
        r = rng.standard_normal(seconds) * sigma * np.sqrt(h)
        labels.append(
            pl.DataFrame(
                {"symbol_id": "SIM1:SIM", "tf": "1s", "ts": ts, "label_set": LABEL_SET, "horizon": h}
            ).with_columns(
                (pl.col("ts") + pl.duration(seconds=h)).alias("known_at"),
                pl.Series("log_return", r / 1e4),
                pl.Series("bucket", np.searchsorted(vm.EDGES[1:-1], r, side="right").astype(np.int64)),
                pl.lit(None, pl.Float64).alias("vol"),
            )
        )
    row = {"label_set": LABEL_SET, "tf": "1s", "horizons": list(vm.HORIZONS), "discretizer": "{}", "price": "mid"}
    write_labels(lake, pl.concat(labels), row)


def test_canary_rolls_a_worse_champion_back_on_live_windows(prefect_harness, tracker, nats_server, tmp_path):
    from flows.canary import canary

    forced = Decision((GateResult("forced", "pass", None, None, "test"),), 0.0)
    kw = {"models_dir": tmp_path / "state" / "models", "publish": nats_publisher(nats_server.url)}
    good, bad = register(tracker, tmp_path, 1.0), register(tracker, tmp_path, 2.5)
    apply_decision(tracker, NAME, good, forced, promoted_at_ns=int((T0 - timedelta(hours=1)).timestamp() * 1e9), **kw)
    apply_decision(tracker, NAME, bad, forced, promoted_at_ns=int(T0.timestamp() * 1e9), **kw)  # stale evidence
    assert read_pointer(nats_server.url)[0]["model_version"] == bad
    lake = Lake(str(tmp_path / "lake"))
    write_gold(lake, T0 - timedelta(minutes=30), 3600, seed=5)  # half an hour before the promotion, half after
    profile = tmp_path / "profile.yaml"
    profile.write_text(
        f"name: t\nlake: {{root: {tmp_path / 'lake'}}}\nstate_dir: {tmp_path / 'state'}\n"
        f"mlflow: {{tracking_uri: '{tracker.tracking_uri}', artifact_root: '{tracker.artifact_root}'}}\n"
        f"nats: {{url: '{nats_server.url}'}}\n"
    )
    early = canary(NAME, as_of=T0 + timedelta(minutes=2), label_set=LABEL_SET, profile=str(profile))
    assert early["waiting"].endswith("200 needed") and early["windows"] < 200, early  # nothing decided yet
    assert tracker.alias(NAME, CHAMPION) == bad

    late = canary(NAME, as_of=T0 + timedelta(hours=1), label_set=LABEL_SET, profile=str(profile))
    # only windows decided after the promotion, with every horizon realised by as_of: 30 min less the warm-up
    assert 1750 < late["windows"] <= 1800, late
    assert late["rollback"] and any(r.startswith("log score fell") for r in late["reasons"]), late
    assert tracker.alias(NAME, CHAMPION) == good
    assert read_pointer(nats_server.url)[0]["model_version"] == good  # the running scorer swaps back
    ece = lake.read(GOLD_MONITORING).filter(pl.col("source") == "canary")
    assert ece["metric"].to_list() == ["ece"] and ece["model_version"].to_list() == [bad]
