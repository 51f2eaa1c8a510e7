"""The promote flow's Sharpe evidence: a registered model's held-out days read back from gold, backtested on silver."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import vol_models as vm

from core.strategy import load_strategy
from feature_store.gold import write_features, write_labels
from feature_store.labels import make_labels, tick_label_spec
from feature_store.registry import get
from flows.promote import backtest_evidence
from lakehouse.storage import Lake
from lakehouse.tables import SILVER_BARS
from training.gates import sharpe_gate

NAME = "bt-volm"
NAMES = get("tick_v2").names
DAYS = [datetime(2026, 3, d, 14, 30, tzinfo=UTC) for d in (2, 3, 4, 5)]
SECONDS = 900
TS = pl.Datetime("ns", "UTC")


def _day(rng, start: datetime) -> tuple[pl.DataFrame, pl.DataFrame]:
    ts = pl.Series("ts", [start + timedelta(seconds=i) for i in range(SECONDS)]).cast(TS)
    close = 20.0 * np.exp(np.cumsum(rng.standard_normal(SECONDS) * 3e-4))
    values = rng.standard_normal((SECONDS, len(NAMES)))
    values[:, 0] = rng.uniform(2, 12, SECONDS)  # the vol model's sigma
    feats = pl.DataFrame({"symbol_id": "SIM1:SIM", "tf": "1s", "ts": ts, "known_at": ts, "feature_set": "tick_v2"})
    feats = feats.with_columns(pl.Series(n, values[:, i]) for i, n in enumerate(NAMES))
    quality = {"stale": False, "outlier_frac": 0.0, "n_src": 1, "lat_ms": 0.0, "sources": ["a"], "outliers": []}
    bars = pl.DataFrame({
        "symbol_id": "SIM1:SIM", "tf": "1s", "ts": ts, "adjustment": "raw", "open": close, "high": close * 1.0001,
        "low": close * 0.9999, "close": close, "volume": 1e6, "vwap": close, "n_trades": 10,
        "quality": [quality] * SECONDS, "known_at": ts,
    })  # fmt: skip
    return feats, bars


def test_promote_backtests_the_held_out_days(tracker, tmp_path):
    from training.onnx_export import finish_export, run_onnx

    lake, rng = Lake(str(tmp_path / "lake")), np.random.default_rng(8)
    spec = tick_label_spec(price="trade")  # the synthetic days carry bars only, no quotes
    for start in DAYS:
        feats, bars = _day(rng, start)
        write_features(lake, feats)
        lake.append(SILVER_BARS, bars.select(SILVER_BARS.column_names))
        labels = make_labels(bars.with_columns(pl.col("ts").dt.date().alias("day")), spec)
        write_labels(lake, labels, spec.row())
    meta = replace(vm.meta(NAME, "1"), feature_set="tick_v2", feature_names=NAMES)
    X = rng.uniform(2, 12, (8, vm.L, len(NAMES))).astype(np.float32)
    graph = vm.vol_graph(1.0)
    graph.graph.input[0].type.tensor_type.shape.dim[2].dim_value = len(NAMES)  # it reads feature 0 of any F
    path = finish_export(graph, meta, tmp_path / "export", X, vm.reference(1.0), None)
    test_days = np.array([(d.date() - datetime(1970, 1, 1).date()).days for d in DAYS[-2:]], np.int32)
    evidence = tmp_path / "v1.evidence.npz"
    np.savez_compressed(evidence, X=X, y=np.zeros((8, 2), np.int64), days=np.repeat(test_days, 4))
    run_id = tracker.log_run(
        "tests", "v1", params={"label_set": "ret_tick_v1"}, metrics={"x": 1.0},
        artifacts={"model": path.parent, "evidence": evidence},
    )  # fmt: skip
    tracker.register(run_id, NAME)
    assert run_onnx(path, X).shape == (8, 2, 101)

    ev, why = backtest_evidence(lake, load_strategy(), tracker, NAME, "1", tmp_path / "work")
    assert ev is not None, why
    assert ev.sessions >= 2 and "on 2 held-out days" in ev.note and "horizon 1s" in ev.note, ev
    gate = sharpe_gate(ev, 0.0)
    assert gate.status == "fail", gate  # a zero-mean model takes no positions: no edge, no pass
    none, why = backtest_evidence(lake, load_strategy(), tracker, NAME, "1", tmp_path / "w2", symbols=["NOPE:US"])
    assert none is None and "no gold windows" in why


def test_promote_records_the_judged_ece_for_monitoring(tmp_path):
    from flows.promote import _record_ece
    from lakehouse.monitoring import GOLD_MONITORING
    from training.gates import Decision, GateResult

    lake = Lake(str(tmp_path / "lake"))
    gates = (GateResult("ece", "fail", 0.07, 0.05, "worst 0.07"), GateResult("latency", "pass", 0.4, 5.0, ""))
    _record_ece(lake, Decision(gates, score=0.0), NAME, "3")
    rows = lake.read(GOLD_MONITORING)
    assert rows.select("metric", "value", "model", "model_version", "source").rows() == [
        ("ece", 0.07, NAME, "3", "promote")
    ]
    _record_ece(lake, Decision((GateResult("ece", "skipped", None, 0.05, ""),), score=0.0), NAME, "4")
    assert lake.read(GOLD_MONITORING).height == 1  # nothing measured, nothing recorded
