"""Training throughput and exported-model latency of the default tick PriceTransformer.

Prints, beside baselines measured in the same run:
- training samples/s of the PriceTransformer (L=60, F=12, H=8, K=101; torch on ``--threads`` cores)
  and of LightGBM (one horizon, the same windows as tabular features);
- onnxruntime latency of the exported transformer at batch 1 and 64 on one thread (p50/p99 over
  ``--runs`` calls), beside the contract's fixture model (contracts/models/tick_tiny) and a
  climatology graph. Target: batch-1 p99 < 1 ms for the default tick model.

    nice .venv/bin/python benchmarks/training.py [--threads 2] [--runs 2000] [--epochs 1]

CPU seconds are printed beside wall time: the development machine is shared.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

warnings.filterwarnings("ignore")
# this script's directory must not shadow the training package; the repository root must be importable
ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]


def tick_windows(n: int, seed: int = 0):
    """Synthetic tick-shaped windows: the learnable market's 3 features padded with 9 noise features."""
    from training.models.base import Buckets
    from training.synthetic import SyntheticConfig, simulate

    buckets = Buckets.default()
    horizons = (1, 5, 10, 30, 60, 120, 300, 600)
    d = simulate(SyntheticConfig(n_steps=n + 660, lookback=60, horizons=horizons, vols_bps=(0.5, 1.5)), buckets)
    noise = np.random.default_rng(seed).normal(size=(*d.X.shape[:2], 9)).astype(np.float32)
    return np.concatenate([d.X, noise], axis=2)[:n], d.y[:n], buckets


def timed(fn):
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def ort_latency(path: Path, batch: int, runs: int) -> tuple[float, float]:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    _, L, F = sess.get_inputs()[0].shape  # each model's own window shape
    x = np.random.default_rng(1).normal(size=(batch, L, F)).astype(np.float32)
    for _ in range(50):
        sess.run(["probs"], {"features": x})
    ts = np.empty(runs)
    for i in range(runs):
        t = time.perf_counter_ns()
        sess.run(["probs"], {"features": x})
        ts[i] = time.perf_counter_ns() - t
    return float(np.percentile(ts, 50) / 1e3), float(np.percentile(ts, 99) / 1e3)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=2000)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--samples", type=int, default=20_000)
    args = ap.parse_args()

    import torch

    from training.models.climatology import Climatology
    from training.models.lightgbm_buckets import LightGBMBuckets, LightGBMConfig
    from training.models.transformer import PriceTransformer, TransformerConfig
    from training.onnx_export import torch_to_onnx

    torch.set_num_threads(args.threads)
    X, y, buckets = tick_windows(args.samples)
    n_fit = int(len(X) * 0.85) - 32  # what fit trains on after holding out validation windows
    cfg = TransformerConfig(max_epochs=args.epochs, patience=args.epochs + 1)
    model, wall, cpu = timed(lambda: PriceTransformer(buckets, cfg).fit(X, y))
    print(
        f"transformer train: {n_fit * model.epochs_ / wall:,.0f} samples/s wall ({wall:.1f} s, {cpu:.1f} CPU s, "
        f"{model.epochs_} epoch(s) of {n_fit} windows, {args.threads} threads)"
    )
    lgb_cfg = LightGBMConfig(n_estimators=100, num_threads=args.threads)
    _, wall_l, cpu_l = timed(lambda: LightGBMBuckets(buckets, lgb_cfg).fit(X[:n_fit], y[:n_fit, :1]))
    print(
        f"baseline lightgbm train (1 horizon, 100 rounds): {n_fit / wall_l:,.0f} samples/s wall ({wall_l:.1f} s, {cpu_l:.1f} CPU s)"
    )

    with tempfile.TemporaryDirectory() as tmp:
        example = torch.from_numpy(X[:2])
        paths = {}
        for name, module in (
            ("transformer", model.to_torch_module()),
            ("climatology", Climatology(buckets).fit(X, y).to_torch_module()),
        ):
            proto = torch_to_onnx(module, example)
            paths[name] = Path(tmp) / f"{name}.onnx"
            paths[name].write_bytes(proto.SerializeToString())
        fixture = max(Path("contracts/models").glob("tick_tiny/*/tick_tiny.onnx"), default=None)
        if fixture is not None:
            paths["fixture tick_tiny"] = fixture
        import onnxruntime as ort

        sess = ort.InferenceSession(str(paths["transformer"]), providers=["CPUExecutionProvider"])
        got = sess.run(["probs"], {"features": X[-256:]})[0]
        ref = model.predict_proba(X[-256:])
        print(f"onnx parity (256 windows): max |diff| = {np.abs(got - ref).max():.2e}")
        for name, path in paths.items():
            for batch in (1, 64):
                p50, p99 = ort_latency(path, batch, args.runs)
                print(f"ort latency {name:>18} batch {batch:>2}: p50 {p50:8.1f} us  p99 {p99:8.1f} us")
    print("target: transformer batch-1 p99 < 1000 us")


if __name__ == "__main__":
    main()
