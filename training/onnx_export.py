"""Export a torch model to the ONNX model contract (contracts/model.md) with its golden vectors.

The exported graph takes ``features`` float32 [batch, L, F] and returns calibrated ``probs``
float32 [batch, H, K]: the per-horizon temperatures are applied inside the graph, so every
consumer (Python reference, Rust scorer) reads the same probabilities. Beside ``<name>.onnx`` the
exporter writes ``<name>.golden.json`` (inputs and the expected outputs through onnxruntime) and
stamps that file's sha256 into the model's metadata_props, so a scorer can prove a model file and
its runtime agree before it serves it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import onnx

from core.errors import ContractError
from feature_store.model_contract import (  # noqa: F401  (re-exported: the export side of the contract)
    CONTRACT_VERSION,
    MIN_OPSET,
    ModelMetadata,
    read_metadata,
    sha256_file,
)

if TYPE_CHECKING:  # torch is imported only to export, so readers of the contract stay light
    import torch
    from torch import nn

GOLDEN_TOLERANCE = 1e-5


def calibrated(
    model: nn.Module,
    temperatures: tuple[float, ...],
    up_slopes: tuple[float, ...] | None = None,
    up_fractions: np.ndarray | None = None,
) -> nn.Module:
    """Wrap a (B, H, K) probability model with per-horizon temperature scaling, in-graph.

    With ``up_slopes`` (H,) and the buckets' ``up_fractions`` (K,), each distribution's up and
    down masses are then rescaled so P(up) = sigmoid(a_h logit P(up))
    (``training.calibration.apply_up_slopes`` is the numpy twin).
    """
    import torch
    from torch import nn

    class Calibrated(nn.Module):
        inv_t: torch.Tensor  # buffers, declared for the type checker
        slopes: torch.Tensor
        frac: torch.Tensor

        def __init__(self) -> None:
            super().__init__()
            self.model = model
            self.register_buffer("inv_t", 1.0 / torch.tensor(temperatures, dtype=torch.float32)[None, :, None])
            self.up = up_slopes is not None and up_fractions is not None
            if self.up:
                self.register_buffer("slopes", torch.tensor(up_slopes, dtype=torch.float32)[None, :])
                self.register_buffer("frac", torch.tensor(np.asarray(up_fractions), dtype=torch.float32))

        def forward(self, features: torch.Tensor) -> torch.Tensor:
            p = self.model(features)  # (B, H, K)
            p = torch.softmax(torch.log(p.clamp_min(1e-30)) * self.inv_t, dim=-1)
            if not self.up:
                return p
            f = self.frac
            pu = (p * f).sum(-1).clamp(1e-6, 1 - 1e-6)  # (B, H)
            target = torch.sigmoid(self.slopes * (torch.log(pu) - torch.log(1 - pu)))[..., None]
            a, b = (p * f * f).sum(-1, keepdim=True), (p * f * (1 - f)).sum(-1, keepdim=True)
            c, d = (p * f).sum(-1, keepdim=True), (p * (1 - f)).sum(-1, keepdim=True)
            u = ((target * d - b) / (a - target * c).clamp_min(1e-12)).clamp(1e-6, 1e6)
            q = p * (f * u + (1 - f))
            return q / q.sum(-1, keepdim=True)

    return Calibrated()


RUN_BATCH = 1024  # windows per onnxruntime call: a transformer's activations grow with the batch


def run_onnx(path: str | Path, x: np.ndarray, batch: int = RUN_BATCH) -> np.ndarray:
    """Run ``features`` through the model with onnxruntime on one CPU thread, ``batch`` windows a call.

    One call over a whole test day (23,400 one-second windows) held ~20 GB of activations and was
    killed for memory in ``mps train`` on real BAC ticks.
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    x = np.ascontiguousarray(x, dtype=np.float32)
    if len(x) <= batch:
        return sess.run(["probs"], {"features": x})[0]
    return np.concatenate([sess.run(["probs"], {"features": x[i : i + batch]})[0] for i in range(0, len(x), batch)])


def write_golden(path: Path, meta: ModelMetadata, x: np.ndarray, probs: np.ndarray) -> str:
    """Write the golden vectors file and return its sha256."""
    doc = {
        "model_name": meta.model_name,
        "model_version": meta.model_version,
        "tolerance": GOLDEN_TOLERANCE,
        "inputs": np.asarray(x, dtype=np.float32).astype(np.float64).tolist(),
        "probs": np.asarray(probs, dtype=np.float32).astype(np.float64).tolist(),
    }
    path.write_text(json.dumps(doc, separators=(",", ":")) + "\n")
    return sha256_file(path)


def torch_to_onnx(model: nn.Module, golden_inputs: torch.Tensor, opset: int = 18) -> onnx.ModelProto:
    """Trace ``model`` (B, L, F) -> (B, H, K) with the dynamo exporter, batch dimension dynamic."""
    import torch

    batch = torch.export.Dim("batch", min=1, max=65536)
    with torch.no_grad():
        program = torch.onnx.export(
            model,
            (golden_inputs,),
            dynamo=True,
            opset_version=opset,
            input_names=["features"],
            output_names=["probs"],
            dynamic_shapes={"features": {0: batch}},
            optimize=True,
            verbose=False,
        )
    assert program is not None  # dynamo=True always returns an ONNXProgram (the stub's Optional is for dynamo=False)
    return program.model_proto


def export_model(
    model: nn.Module,
    meta: ModelMetadata,
    out_dir: str | Path,
    golden_inputs: torch.Tensor,
    opset: int = 18,
    parity_inputs: np.ndarray | None = None,
    up_slopes: tuple[float, ...] | None = None,
    up_fractions: np.ndarray | None = None,
) -> Path:
    """Export ``model`` (calibrated in-graph) to ``out_dir/<name>.onnx`` plus its golden vectors.

    ``golden_inputs`` (B >= 2, L, F) doubles as the export example, so the batch dim is traced
    dynamic. ``parity_inputs`` (held-out windows) are run through torch and onnxruntime too; any
    difference above 1e-5 is a ContractError. Returns the ONNX path; its sha256 is what a champion
    pointer must carry.
    """
    import torch

    _check_inputs(meta, golden_inputs.shape, opset)
    wrapped = calibrated(model, meta.calibration_temperatures, up_slopes, up_fractions).eval()
    proto = torch_to_onnx(wrapped, golden_inputs, opset)

    def reference(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return wrapped(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))).numpy()

    x = golden_inputs.detach().cpu().numpy().astype(np.float32)
    return finish_export(proto, meta, out_dir, x, reference, parity_inputs)


def _check_inputs(meta: ModelMetadata, shape: tuple, opset: int) -> None:
    if opset < MIN_OPSET:
        raise ContractError(f"opset {opset} < {MIN_OPSET}")
    if len(shape) != 3 or shape[0] < 2:
        raise ContractError("golden_inputs must be (B >= 2, L, F)")
    if tuple(shape[1:]) != (meta.lookback, len(meta.feature_names)):
        raise ContractError(f"golden_inputs shape {tuple(shape)} != (B, {meta.lookback}, {len(meta.feature_names)})")
    meta.check()


def parity_max_abs(onnx_path: str | Path, reference, x: np.ndarray, batch: int = 512) -> float:
    """Largest |onnxruntime - reference| over windows ``x`` (N, L, F), in batches."""
    worst = 0.0
    for i in range(0, len(x), batch):
        part = np.ascontiguousarray(x[i : i + batch], dtype=np.float32)
        worst = max(worst, float(np.abs(run_onnx(onnx_path, part) - reference(part)).max()))
    return worst


def finish_export(
    proto: onnx.ModelProto,
    meta: ModelMetadata,
    out_dir: str | Path,
    golden_x: np.ndarray,
    reference,
    parity_inputs: np.ndarray | None = None,
) -> Path:
    """Save any (B, L, F) -> (B, H, K) graph as a contract model: parity, golden vectors, metadata.

    ``reference`` maps float32 windows to the probabilities the graph must reproduce (the torch
    module, LightGBM's predict_proba, ...) within ``GOLDEN_TOLERANCE`` on the golden and parity
    inputs. The golden file's sha256 goes into metadata_props with the rest of ``meta``.
    """
    _check_inputs(
        meta, golden_x.shape, max((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), default=0)
    )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    onnx_path = out_dir / f"{meta.model_name}.onnx"
    golden_path = out_dir / f"{meta.model_name}.golden.json"
    onnx.save_model(proto, str(onnx_path))  # first without metadata, to compute goldens
    x = np.ascontiguousarray(golden_x, dtype=np.float32)
    probs = run_onnx(onnx_path, x)
    for name, inputs in (("golden", x), ("held-out", parity_inputs)):
        if inputs is None:
            continue
        diff = parity_max_abs(onnx_path, reference, inputs)
        if not diff <= GOLDEN_TOLERANCE:
            raise ContractError(f"ONNX and the reference disagree on the {name} windows by {diff:.3g}")
    h, k = len(meta.horizons), meta.n_buckets
    if probs.shape[1:] != (h, k) or not np.allclose(probs.sum(-1), 1.0, atol=1e-4):
        raise ContractError(f"exported probs have shape {probs.shape[1:]} (expected {(h, k)}) or do not sum to 1")
    golden_sha = write_golden(golden_path, meta, x, probs)
    final = ModelMetadata(**{**meta.__dict__, "golden_file": golden_path.name, "golden_sha256": golden_sha})
    proto = onnx.load_model(str(onnx_path))
    del proto.metadata_props[:]
    for key, value in final.props().items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name = "mps.training.onnx_export"
    onnx.checker.check_model(proto)
    onnx.save_model(proto, str(onnx_path))
    return onnx_path


def champion_pointer(onnx_path: str | Path, meta: ModelMetadata, promoted_at_ns: int) -> dict:
    """Build the KV ``models/champion.<name>`` value for an exported model."""
    path = Path(onnx_path).resolve()
    return {
        "model_name": meta.model_name,
        "model_version": meta.model_version,
        "onnx_uri": path.as_uri(),
        "sha256": sha256_file(path),
        "promoted_at": int(promoted_at_ns),
    }
