"""Export parity: torch and LightGBM models against onnxruntime on held-out windows, metadata round trip."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import onnx
import pytest
import vol_models as vm

from feature_store.model_contract import ModelMetadata, read_metadata, sha256_file
from training.onnx_export import GOLDEN_TOLERANCE, run_onnx


def check_contract(path, meta: ModelMetadata) -> ModelMetadata:
    proto = onnx.load(str(path))
    assert [i.name for i in proto.graph.input] == ["features"] and [o.name for o in proto.graph.output] == ["probs"]
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 17
    got = read_metadata(path)
    for key in ("model_name", "model_version", "feature_set", "feature_names", "lookback", "horizons"):
        assert getattr(got, key) == getattr(meta, key), key
    assert got.bucket_edges_bps == meta.bucket_edges_bps
    assert got.calibration_temperatures == meta.calibration_temperatures
    golden = path.with_name(got.golden_file)
    assert sha256_file(golden) == got.golden_sha256
    doc = json.loads(golden.read_text())
    out = run_onnx(path, np.asarray(doc["inputs"], np.float32))
    assert np.abs(out - np.asarray(doc["probs"])).max() <= GOLDEN_TOLERANCE
    return got


def test_torch_export_parity_on_held_out_windows(tmp_path):
    X, _, _ = vm.world(600, seed=3)
    path = vm.export_torch(1.3, "volt", "4", tmp_path, parity=X)
    check_contract(path, vm.meta("volt", "4"))
    torch_probs = vm.reference(1.3)(X)
    assert np.abs(run_onnx(path, X) - torch_probs).max() <= 1e-5


def test_export_refuses_a_graph_that_disagrees(tmp_path):
    X, _, _ = vm.world(50, seed=4)
    from core.errors import ContractError
    from training.onnx_export import finish_export

    with pytest.raises(ContractError, match="disagree"):
        finish_export(vm.vol_graph(1.0), vm.meta("bad", "1"), tmp_path, X[:4], vm.reference(1.1), X)


def test_lightgbm_export_parity_with_calibration(tmp_path):
    import lightgbm as lgb

    from training.export_lgbm import export_lightgbm, lightgbm_reference, one_hot_classes, tabular

    X, y, _ = vm.world(1500, seed=6)
    X_test, _, _ = vm.world(400, seed=7)
    steps = (-1, -3)
    k = len(vm.EDGES) - 1
    y_coarse = np.clip(y, 40, 60)  # a coarser binning: tails pooled into the end classes
    classifiers, maps = [], []
    for h in range(y.shape[1]):
        clf = lgb.LGBMClassifier(n_estimators=15, num_leaves=7, learning_rate=0.2, verbose=-1, n_jobs=1)
        clf.fit(tabular(X, steps), y_coarse[:, h])
        classifiers.append(clf)
        maps.append(one_hot_classes(clf.classes_, k) * 0.999 + 0.001 / k)  # rows sum to one, no empty bucket
    meta = ModelMetadata(**{**vm.meta("gbm", "2").__dict__, "calibration_temperatures": (1.3, 0.8)})
    path = export_lightgbm(classifiers, maps, steps, meta, tmp_path, X_test[:4], parity_inputs=X_test)
    check_contract(path, meta)
    expected = lightgbm_reference(classifiers, maps, steps, meta.calibration_temperatures)(X_test)
    assert np.abs(run_onnx(path, X_test) - expected).max() <= 1e-5


def test_lightgbm_buckets_model_exports_with_window_summary(tmp_path):
    from training.export_lgbm import export_lightgbm_model
    from training.models.base import Buckets
    from training.models.lightgbm_buckets import LightGBMBuckets, LightGBMConfig

    X, y, _ = vm.world(1200, seed=8)
    X_test, _, _ = vm.world(300, seed=9)
    cfg = LightGBMConfig(n_bins=9, lags=(0, 2), n_estimators=12, min_child_samples=20)
    model = LightGBMBuckets(Buckets(vm.EDGES), cfg).fit(X, y)
    meta = vm.meta("gbm_buckets", "1")
    path = export_lightgbm_model(model, meta, tmp_path, X_test[:4], parity_inputs=X_test)
    check_contract(path, meta)
    assert np.abs(run_onnx(path, X_test) - model.predict_proba(X_test)).max() <= 1e-5


def test_lightgbm_on_a_lattice_exports_with_parity(tmp_path):
    """Features on a lattice (repeated values, as tick features are) with the window summary: every
    input sits on a split and long windows' means land on float32 rounding edges. Before, the graph's
    float32 thresholds and float32 reductions disagreed with LightGBM's doubles by 0.034 on the demo."""
    from training.export_lgbm import export_lightgbm_model
    from training.models.base import Buckets
    from training.models.lightgbm_buckets import LightGBMBuckets, LightGBMConfig

    rng = np.random.default_rng(12)
    n, lookback, n_feat = 2_000, 64, 3
    X = (rng.integers(-3, 4, (n, lookback, n_feat)) * np.float32(0.1)).astype(np.float32)  # 0.1 is not a float32
    drift = X[:, -8:, 0].sum(axis=1) * 4.0
    y = Buckets(vm.EDGES).index(drift + rng.standard_normal(n) * 3.0)[:, None].repeat(len(vm.HORIZONS), 1)
    model = LightGBMBuckets(Buckets(vm.EDGES), LightGBMConfig(n_bins=9, n_estimators=40)).fit(X[:1500], y[:1500])
    for clf in model.models_:
        tree = clf.booster_.dump_model()["tree_info"]
        splits, stack = [], [t["tree_structure"] for t in tree]
        while stack:
            node = stack.pop()
            if "threshold" in node:
                splits.append(node["threshold"])
                stack += [node["left_child"], node["right_child"]]
        assert splits and all(float(np.float32(t)) == t for t in splits)  # every threshold is a float32
    meta = replace(vm.meta("gbm_lattice", "1"), lookback=lookback, feature_names=("a", "b", "c"))
    path = export_lightgbm_model(model, meta, tmp_path, X[1500:1504], parity_inputs=X[1500:])
    assert np.abs(run_onnx(path, X[1500:]) - model.predict_proba(X[1500:])).max() <= 1e-5
