"""Export per-horizon LightGBM classifiers to the ONNX model contract, in one graph (onnxmltools).

LightGBM sees a flat row per window: the features of a few chosen steps of the (L, F) window
(``steps``, e.g. (-1,) for the last second only, or (-1, -5, -30)). Each horizon has its own
multiclass booster over classes (bucket indices, or coarser bins); ``class_to_bucket`` (C_h, K)
maps its class probabilities back onto the K buckets (a one-hot matrix when classes are buckets;
a spreading matrix for a documented coarser binning). The graph is

    features (B, L, F) -> Gather(steps) -> Reshape (B, S*F) -> booster_h -> (B, C_h) @ M_h -> (B, K)
    -> stack (B, H, K) -> temperature scaling softmax(log p / T_h) -> probs

and ``lightgbm_reference`` computes the same in numpy with ``predict_proba``, which
``finish_export`` holds the graph to (<= 1e-5) on golden and held-out windows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from feature_store.model_contract import ModelMetadata
from training.models.lightgbm_buckets import window_summary
from training.onnx_export import finish_export

ML_OPSET = 3


def tabular(X: np.ndarray, steps: tuple[int, ...], summary: bool = False) -> np.ndarray:
    """(N, L, F) windows -> rows: the chosen steps' features (step-major), then with ``summary``
    each feature's mean and (population) standard deviation over the window."""
    cols = [X[:, list(steps), :].reshape(len(X), -1)]
    if summary:
        cols += window_summary(X)
    return np.ascontiguousarray(np.concatenate(cols, axis=1), dtype=np.float32)


def lightgbm_reference(classifiers, class_to_bucket, steps, temperatures, summary: bool = False):
    """The numpy forecast the graph must reproduce: float32 windows -> (B, H, K)."""

    def probs(x: np.ndarray) -> np.ndarray:
        rows = tabular(x, steps, summary)
        out = np.stack(
            [clf.predict_proba(rows) @ m for clf, m in zip(classifiers, class_to_bucket, strict=True)], axis=1
        )
        logit = np.log(np.maximum(out, 1e-30)) / np.asarray(temperatures)[None, :, None]
        e = np.exp(logit - logit.max(-1, keepdims=True))
        return (e / e.sum(-1, keepdims=True)).astype(np.float32)

    return probs


def _booster_graph(clf, n_cols: int, prefix: str) -> onnx.GraphProto:
    from onnxmltools import convert_lightgbm
    from onnxmltools.convert.common.data_types import FloatTensorType

    proto = convert_lightgbm(
        clf,
        initial_types=[("rows", FloatTensorType([None, n_cols]))],
        zipmap=False,
        target_opset=15,  # the highest onnxmltools 1.16 knows; its ops are unchanged in opset 18
    )
    ml = [o.version for o in proto.opset_import if o.domain == "ai.onnx.ml"]
    if ml and ml[0] > ML_OPSET:
        raise ValueError(f"LightGBM converter emitted ai.onnx.ml opset {ml[0]} > {ML_OPSET}")
    return onnx.compose.add_prefix(proto, prefix, rename_inputs=False).graph


def lightgbm_graph(
    classifiers,
    class_to_bucket,
    steps: tuple[int, ...],
    lookback: int,
    n_features: int,
    temperatures,
    summary: bool = False,
):
    """Build the (B, L, F) -> (B, H, K) ONNX graph of the module docstring."""
    h = len(classifiers)
    k = np.asarray(class_to_bucket[0]).shape[1]
    n_step_cols = len(steps) * n_features
    n_cols = n_step_cols + (2 * n_features if summary else 0)
    idx = np.asarray([s % lookback for s in steps], dtype=np.int64)
    inits = [
        numpy_helper.from_array(idx, "steps"),
        numpy_helper.from_array(np.array([-1, n_step_cols], np.int64), "row_shape"),
        numpy_helper.from_array(np.array([1], np.int64), "axis1"),
        numpy_helper.from_array(np.array(1e-30, np.float32), "p_floor"),
        numpy_helper.from_array((1.0 / np.asarray(temperatures, np.float32)).reshape(1, h, 1), "inv_t"),
    ]
    nodes = [
        helper.make_node("Gather", ["features", "steps"], ["picked"], axis=1),
        helper.make_node("Reshape", ["picked", "row_shape"], ["rows" if not summary else "step_rows"]),
    ]
    if summary:  # mean and population std over the window in float64, then float32 (``window_summary``)
        nodes += [
            helper.make_node("Cast", ["features"], ["features64"], to=TensorProto.DOUBLE),
            helper.make_node("ReduceMean", ["features64", "axis1"], ["mean3"], keepdims=1),
            helper.make_node("Sub", ["features64", "mean3"], ["centred"]),
            helper.make_node("Mul", ["centred", "centred"], ["sq"]),
            helper.make_node("ReduceMean", ["sq", "axis1"], ["var"], keepdims=0),
            helper.make_node("Sqrt", ["var"], ["std64"]),
            helper.make_node("Squeeze", ["mean3", "axis1"], ["mean64"]),
            helper.make_node("Cast", ["mean64"], ["mean"], to=TensorProto.FLOAT),
            helper.make_node("Cast", ["std64"], ["std"], to=TensorProto.FLOAT),
            helper.make_node("Concat", ["step_rows", "mean", "std"], ["rows"], axis=1),
        ]
    stacked = []
    for i, (clf, m) in enumerate(zip(classifiers, class_to_bucket, strict=True)):
        m = np.asarray(m, np.float32)
        if m.shape != (len(clf.classes_), k):
            raise ValueError(f"horizon {i}: class_to_bucket is {m.shape}, expected ({len(clf.classes_)}, {k})")
        sub = _booster_graph(clf, n_cols, f"h{i}_")
        prob_out = [o.name for o in sub.output if o.name.endswith("probabilities")][0]
        nodes.extend(sub.node)
        inits.extend(sub.initializer)
        inits.append(numpy_helper.from_array(m, f"h{i}_map"))
        nodes.append(helper.make_node("MatMul", [prob_out, f"h{i}_map"], [f"h{i}_bk"]))
        nodes.append(helper.make_node("Unsqueeze", [f"h{i}_bk", "axis1"], [f"h{i}_b1k"]))
        stacked.append(f"h{i}_b1k")
    nodes += [
        helper.make_node("Concat", stacked, ["raw"], axis=1),
        helper.make_node("Max", ["raw", "p_floor"], ["floored"]),
        helper.make_node("Log", ["floored"], ["logp"]),
        helper.make_node("Mul", ["logp", "inv_t"], ["scaled"]),
        helper.make_node("Softmax", ["scaled"], ["probs"], axis=-1),
    ]
    graph = helper.make_graph(
        nodes,
        "lightgbm_buckets",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", lookback, n_features])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", h, k])],
        inits,
    )
    opsets = [helper.make_opsetid("", 18), helper.make_opsetid("ai.onnx.ml", ML_OPSET)]
    return helper.make_model(graph, opset_imports=opsets, ir_version=10)


def export_lightgbm(
    classifiers,
    class_to_bucket,
    steps: tuple[int, ...],
    meta: ModelMetadata,
    out_dir: str | Path,
    golden_x: np.ndarray,
    parity_inputs: np.ndarray | None = None,
    summary: bool = False,
) -> Path:
    """Export per-horizon LightGBM classifiers as one contract model (metadata, golden vectors, parity)."""
    if len(classifiers) != len(meta.horizons) or len(class_to_bucket) != len(meta.horizons):
        raise ValueError(f"need one classifier and one class_to_bucket per horizon ({len(meta.horizons)})")
    temps = meta.calibration_temperatures
    proto = lightgbm_graph(classifiers, class_to_bucket, steps, meta.lookback, len(meta.feature_names), temps, summary)
    reference = lightgbm_reference(classifiers, class_to_bucket, steps, temps, summary)
    return finish_export(proto, meta, out_dir, golden_x, reference, parity_inputs)


def export_lightgbm_model(model, meta: ModelMetadata, out_dir, golden_x, parity_inputs=None) -> Path:
    """Export a fitted ``training.models.lightgbm_buckets.LightGBMBuckets`` (lags + window summary)."""
    steps = tuple(meta.lookback - 1 - lag for lag in model.cfg.lags if lag < meta.lookback)
    maps = [np.asarray(spread, np.float32) for _, spread in model.maps_]
    return export_lightgbm(model.models_, maps, steps, meta, out_dir, golden_x, parity_inputs, model.cfg.summary)


def one_hot_classes(classes: np.ndarray, k: int) -> np.ndarray:
    """(C, K) map for classifiers whose classes are bucket indices (buckets never seen get no mass)."""
    m = np.zeros((len(classes), k), np.float32)
    m[np.arange(len(classes)), np.asarray(classes, dtype=np.int64)] = 1.0
    return m
