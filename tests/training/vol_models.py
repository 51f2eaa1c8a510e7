"""A small, exact world for the promotion tests: returns ~ N(0, sigma) with sigma a visible feature.

``VolModel(scale)`` forecasts N(0, scale * sigma) discretised into the buckets, in torch (so it
exports to ONNX): scale 1 is the truth, larger scales are worse by a known margin.
"""

from __future__ import annotations

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from feature_store.model_contract import ModelMetadata
from training.onnx_export import export_model, finish_export

EDGES = np.arange(-50.5, 51.0, 1.0)  # 101 buckets of 1 bp
FEATURES = ("sigma_bps", "noise")
L = 4
HORIZONS = (1, 5)


class VolModel(nn.Module):
    """(B, L, F) -> (B, H, K): N(0, scale * sigma * sqrt(h)) with sigma the last step's feature 0."""

    def __init__(self, scale: float) -> None:
        super().__init__()
        self.register_buffer("inner", torch.tensor(EDGES[1:-1], dtype=torch.float32))
        self.register_buffer("root_h", torch.tensor(np.sqrt(HORIZONS), dtype=torch.float32))
        self.scale = float(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sigma = x[:, -1, 0].clamp_min(0.1) * self.scale  # (B,)
        z = self.inner[None, None, :] / (sigma[:, None, None] * self.root_h[None, :, None])  # (B, H, K-1)
        cdf = 0.5 * (1 + torch.erf(z / 2**0.5))
        zeros = torch.zeros_like(cdf[..., :1])
        p = torch.diff(torch.cat([zeros, cdf, torch.ones_like(zeros)], dim=-1), dim=-1)
        p = p.clamp_min(1e-9)
        return p / p.sum(-1, keepdim=True)


def world(n: int, seed: int, days: int = 10) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(X (n, L, F) float32, y (n, H) buckets, day (n,)): sigma log-uniform in 2..12 bps."""
    rng = np.random.default_rng(seed)
    sigma = np.exp(rng.uniform(np.log(2), np.log(12), n))
    X = np.zeros((n, L, len(FEATURES)), np.float32)
    X[:, :, 0] = sigma[:, None]
    X[:, :, 1] = rng.standard_normal((n, L))
    r = rng.standard_normal((n, len(HORIZONS))) * sigma[:, None] * np.sqrt(HORIZONS)[None, :]
    y = np.searchsorted(EDGES[1:-1], r, side="right")
    return X, y, np.repeat(np.arange(days), -(-n // days))[:n]


def climatology(y: np.ndarray, n: int) -> np.ndarray:
    """Bucket frequencies of ``y`` (+0.5 smoothing), repeated for ``n`` samples."""
    counts = np.stack([np.bincount(y[:, h], minlength=len(EDGES) - 1) + 0.5 for h in range(y.shape[1])])
    return np.broadcast_to(counts / counts.sum(1, keepdims=True), (n, *counts.shape)).copy()


def meta(name: str, version: str) -> ModelMetadata:
    return ModelMetadata(
        model_name=name,
        model_version=version,
        feature_set="test_v1",
        feature_names=FEATURES,
        lookback=L,
        horizons=HORIZONS,
        horizon_unit="s",
        tf="1s",
        bucket_edges_bps=tuple(EDGES.tolist()),
        calibration_temperatures=(1.0,) * len(HORIZONS),
        conformal_alpha=0.1,
        conformal_qhat_bps=(0.0,) * len(HORIZONS),
    )


def export_torch(scale: float, name: str, version: str, out_dir, parity: np.ndarray | None = None):
    """Export ``VolModel(scale)`` through torch's dynamo exporter (seconds to a minute)."""
    X, _, _ = world(8, seed=99)
    return export_model(VolModel(scale).eval(), meta(name, version), out_dir, torch.from_numpy(X), parity_inputs=parity)


def reference(scale: float):
    """The numpy twin of ``VolModel(scale)``: float32 windows -> (B, H, K)."""
    from scipy.special import erf

    def probs(x: np.ndarray) -> np.ndarray:
        sigma = np.maximum(x[:, -1, 0].astype(np.float64), 0.1) * scale
        z = EDGES[1:-1][None, None, :] / (sigma[:, None, None] * np.sqrt(HORIZONS)[None, :, None])
        cdf = 0.5 * (1 + erf(z / np.sqrt(2)))
        n = len(x)
        p = np.diff(np.concatenate([np.zeros((n, len(HORIZONS), 1)), cdf, np.ones((n, len(HORIZONS), 1))], -1), axis=-1)
        p = np.maximum(p, 1e-9)
        return (p / p.sum(-1, keepdims=True)).astype(np.float32)

    return probs


def vol_graph(scale: float) -> onnx.ModelProto:
    """``VolModel(scale)`` written directly as an ONNX graph (milliseconds; no torch tracing)."""
    h = len(HORIZONS)
    inits = [
        numpy_helper.from_array(np.array(L - 1, np.int64), "last"),
        numpy_helper.from_array(np.array(0, np.int64), "zero_i"),
        numpy_helper.from_array(np.array(0.1, np.float32), "floor_sigma"),
        numpy_helper.from_array(np.array(scale, np.float32), "scale"),
        numpy_helper.from_array(np.array([1, 2], np.int64), "axes12"),
        numpy_helper.from_array(np.sqrt(HORIZONS).astype(np.float32).reshape(1, h, 1), "root_h"),
        numpy_helper.from_array(EDGES[1:-1].astype(np.float32).reshape(1, 1, -1), "inner"),
        numpy_helper.from_array(np.array(1 / np.sqrt(2), np.float32), "inv_sqrt2"),
        numpy_helper.from_array(np.array(0.5, np.float32), "half"),
        numpy_helper.from_array(np.array(1.0, np.float32), "one"),
        numpy_helper.from_array(np.array(0.0, np.float32), "zero_f"),
        numpy_helper.from_array(np.array(1e-9, np.float32), "p_floor"),
        numpy_helper.from_array(np.array([0], np.int64), "s0"),
        numpy_helper.from_array(np.array([1], np.int64), "s1"),
        numpy_helper.from_array(np.array([-1], np.int64), "sm1"),
        numpy_helper.from_array(np.array([2], np.int64), "ax2"),
        numpy_helper.from_array(np.array([np.iinfo(np.int64).max], np.int64), "send"),
    ]
    n = helper.make_node
    nodes = [
        n("Gather", ["features", "last"], ["step"], axis=1),  # (B, F)
        n("Gather", ["step", "zero_i"], ["sig_raw"], axis=1),  # (B,)
        n("Max", ["sig_raw", "floor_sigma"], ["sig_f"]),
        n("Mul", ["sig_f", "scale"], ["sig"]),
        n("Unsqueeze", ["sig", "axes12"], ["sig3"]),  # (B, 1, 1)
        n("Mul", ["sig3", "root_h"], ["den"]),  # (B, H, 1)
        n("Div", ["inner", "den"], ["z"]),  # (B, H, K-1)
        n("Mul", ["z", "inv_sqrt2"], ["zs"]),
        n("Erf", ["zs"], ["e"]),
        n("Add", ["e", "one"], ["e1"]),
        n("Mul", ["e1", "half"], ["cdf"]),
        n("Slice", ["cdf", "s0", "s1", "ax2"], ["first"]),
        n("Mul", ["first", "zero_f"], ["zeros"]),
        n("Add", ["zeros", "one"], ["ones"]),
        n("Concat", ["zeros", "cdf", "ones"], ["full"], axis=2),
        n("Slice", ["full", "s1", "send", "ax2"], ["upper"]),
        n("Slice", ["full", "s0", "sm1", "ax2"], ["lower"]),
        n("Sub", ["upper", "lower"], ["p_raw"]),
        n("Max", ["p_raw", "p_floor"], ["p_fl"]),
        n("ReduceSum", ["p_fl", "ax2"], ["tot"], keepdims=1),
        n("Div", ["p_fl", "tot"], ["probs"]),
    ]
    graph = helper.make_graph(
        nodes,
        "vol_model",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", L, len(FEATURES)])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", h, len(EDGES) - 1])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10)


def export_graph(scale: float, name: str, version: str, out_dir, parity: np.ndarray | None = None):
    """Export ``vol_graph(scale)`` as a contract model (metadata, golden vectors, parity)."""
    X, _, _ = world(8, seed=99)
    return finish_export(vol_graph(scale), meta(name, version), out_dir, X, reference(scale), parity)
