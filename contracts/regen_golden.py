"""Regenerate the fixture models and golden vectors in contracts/ (deterministic).

    .venv/bin/python -m contracts.regen_golden

Writes contracts/models/tick_tiny/v{1,2}/ (ONNX + its golden vectors, via training.onnx_export;
only when missing or with --models), contracts/golden/kelly.json (random distributions and scipy's
Kelly optimum) and contracts/golden/signals.json (FeatureUpdate windows or raw probabilities, the risk state and
sizing config of each case, and the Signal the Python reference computes). pytest and cargo test
both read these files; rerun this only when a contract changes, and commit the result.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, TypedDict

import numpy as np
import torch

from backtest.signal import compute_signal
from backtest.sizing import RiskState, SizingConfig
from contracts.kelly_oracle import scipy_kelly
from training.onnx_export import ModelMetadata, export_model, read_metadata, run_onnx
from training.tiny_model import TinyTickConfig, TinyTickModel, bucket_edges_bps, example_inputs

CONTRACTS = Path(__file__).resolve().parent
MODELS = CONTRACTS / "models" / "tick_tiny"
GOLDEN = CONTRACTS / "golden" / "signals.json"
KELLY = CONTRACTS / "golden" / "kelly.json"
NOW_NS = 1_763_800_000_000_000_000  # a fixed "now" for the cases (2025-11-22)


class RiskDict(TypedDict):
    """A case's risk state as written to the golden file (``RiskState``'s fields)."""

    nav: float
    intraday_drawdown: float
    kill: bool


class UpdateDict(TypedDict):
    """A case's FeatureUpdate header as written to the golden file."""

    symbol_id: str
    tf: str
    ts: int
    known_at: int
    seq: int


# name, {"window"|"probs": array}, SizingConfig overrides, risk state, warm, update age (ns)
CaseSpec = tuple[str, dict[str, np.ndarray], dict[str, Any], RiskDict, bool, int]


def tiny_metadata(cfg: TinyTickConfig, version: str) -> ModelMetadata:
    """Metadata of the default tick model (horizons 1..600 s, 101 buckets over -50..+50 bps)."""
    h = len(cfg.horizons)
    return ModelMetadata(
        model_name=cfg.name,
        model_version=version,
        feature_set=cfg.feature_set,
        feature_names=cfg.feature_names,
        lookback=cfg.lookback,
        horizons=cfg.horizons,
        horizon_unit="s",
        tf="1s",
        bucket_edges_bps=tuple(bucket_edges_bps(cfg.n_buckets)),
        calibration_temperatures=tuple(1.0 + 0.05 * i for i in range(h)),
        conformal_alpha=0.1,
        conformal_qhat_bps=tuple(0.5 + 0.25 * i for i in range(h)),
    )


def export_tiny(version: int, out_dir: Path) -> Path:
    """Export tiny tick model version ``version`` (seed 7 + version - 1) to ``out_dir``."""
    cfg = TinyTickConfig(seed=6 + version)
    torch.manual_seed(cfg.seed)
    model = TinyTickModel(cfg).eval()
    return export_model(model, tiny_metadata(cfg, str(version)), out_dir, example_inputs(cfg, batch=4))


def _f32(a: np.ndarray) -> list:
    return np.asarray(a, dtype=np.float32).astype(np.float64).tolist()


def signal_cases(onnx_path: Path) -> dict:
    """Build the signal golden cases from the v1 model."""
    meta = read_metadata(onnx_path)
    base = SizingConfig.load()
    cfg_tf = TinyTickConfig()
    windows = example_inputs(cfg_tf, batch=6, seed=23).numpy()
    windows[5, :, cfg_tf.feature_names.index("ret_1s")] += 4e-4  # a trending window
    rng = np.random.default_rng(5)
    h, k = len(meta.horizons), meta.n_buckets
    spiky = np.full((h, k), 1e-6, dtype=np.float32)
    spiky[:, 70] = 1.0  # almost all mass at +20 bps
    zero_bucket = np.zeros((h, k), dtype=np.float32)
    zero_bucket[:, 50] = 1.0  # all mass in the bucket straddling 0
    all_down = np.zeros((h, k), dtype=np.float32)
    all_down[:, :40] = rng.dirichlet(np.ones(40), size=h).astype(np.float32)
    bimodal = np.full((h, k), 1e-4, dtype=np.float32)
    bimodal[:, 10] += 0.45
    bimodal[:, 95] += 0.55
    dirichlet = rng.dirichlet(np.full(k, 0.7), size=h).astype(np.float32)
    risk: RiskDict = {"nav": base.nav, "intraday_drawdown": 0.01, "kill": False}
    specs: list[CaseSpec] = [
        ("window_0", {"window": windows[0]}, {"fee_bps": 0.0, "slippage_bps": 0.0}, risk, True, 0),
        ("window_1", {"window": windows[1]}, {}, risk, True, 0),
        ("window_2_no_vol_target", {"window": windows[2]}, {"realized_vol_feature": None}, risk, True, 0),
        (
            "window_3_nav_cap",
            {"window": windows[3]},
            {"max_nav_frac": 1e-4, "kelly_alpha": 1.0, "fee_bps": 0.0, "slippage_bps": 0.0},
            risk,
            True,
            0,
        ),
        (
            "window_4_adv_cap",
            {"window": windows[4]},
            {"max_adv_share": 1e-7, "fee_bps": 0.0, "slippage_bps": 0.0},
            risk,
            True,
            0,
        ),
        ("window_5_trend", {"window": windows[5]}, {"fee_bps": 0.0, "slippage_bps": 0.0}, risk, True, 0),
        ("stale", {"window": windows[0]}, {}, risk, True, 6_000_000_000),
        (
            "drawdown_kill",
            {"window": windows[1]},
            {},
            {"nav": base.nav, "intraday_drawdown": 0.05, "kill": False},
            True,
            0,
        ),
        ("kill_switch", {"window": windows[1]}, {}, {"nav": base.nav, "intraday_drawdown": 0.0, "kill": True}, True, 0),
        (
            "probs_vol_cap",
            {"probs": spiky},
            {"max_nav_frac": 10.0, "kelly_alpha": 1.0, "adv_feature": None},
            risk,
            True,
            0,
        ),
        (
            "probs_kelly_max",
            {"probs": spiky},
            {"max_nav_frac": 1e3, "kelly_max": 7.5, "realized_vol_feature": None},
            risk,
            True,
            0,
        ),
        ("warmup", {"window": windows[2]}, {}, risk, False, 0),
        ("probs_spiky_up", {"probs": spiky}, {}, risk, True, 0),
        ("probs_zero_bucket", {"probs": zero_bucket}, {}, risk, True, 0),
        ("probs_all_down", {"probs": all_down}, {"max_nav_frac": 0.5}, risk, True, 0),
        ("probs_bimodal", {"probs": bimodal}, {"adv_feature": None}, risk, True, 0),
        ("probs_dirichlet", {"probs": dirichlet}, {}, {"nav": 2.5e6, "intraday_drawdown": 0.0, "kill": False}, True, 0),
    ]
    cases = []
    for i, (name, inp, overrides, risk_d, warm, age_ns) in enumerate(specs):
        cfg = replace(base, **overrides)
        window = inp.get("window")
        if window is not None:
            probs = run_onnx(onnx_path, window[None].astype(np.float32))[0]
            last = window[-1]
        else:
            probs = inp["probs"]
            last = windows[0][-1]
        ts = NOW_NS - 250_000_000 - age_ns
        update: UpdateDict = {
            "symbol_id": f"SYM{i}:US",
            "tf": meta.tf,
            "ts": ts,
            "known_at": ts + 1_000_000,
            "seq": 100 + i,
        }
        expected = compute_signal(
            probs, meta, cfg, **update, last_features=last, warm=warm, risk=RiskState(**risk_d), now_ns=NOW_NS
        )
        case = {
            "name": name,
            "update": update,
            "now_ns": NOW_NS,
            "warm": warm,
            "risk": risk_d,
            "sizing": asdict(cfg),
            "last_features": _f32(last),
        }
        if window is not None:
            case["window"] = _f32(window)
        else:
            case["probs"] = _f32(probs)
        case["expected"] = expected
        cases.append(case)
    return {"model": str(onnx_path.relative_to(CONTRACTS)), "tolerance": 1e-6, "cases": cases}


def kelly_cases(n: int = 40) -> dict:
    """Random bucket distributions with scipy's Kelly optimum: both languages are held to it (1e-9)."""
    rng = np.random.default_rng(11)
    edges = np.linspace(-50, 50, 102) * 1e-4
    mids = np.expm1(0.5 * (edges[:-1] + edges[1:]))
    cases = []
    for i in range(n):
        p = rng.dirichlet(np.full(101, rng.choice([0.05, 0.3, 1.0, 5.0])))
        p[rng.random(101) < 0.2 * (i % 3)] = 0.0  # some empty buckets
        p = p / p.sum()
        cost = [0.0, 1e-5, 1.5e-4][i % 3]
        kelly_max = [100.0, 1e4][i % 2]
        expected = scipy_kelly(p, mids, cost, kelly_max)
        cases.append(
            {"probs": p.tolist(), "returns": mids.tolist(), "cost": cost, "kelly_max": kelly_max, "expected": expected}
        )
    return {"tolerance": 1e-9, "cases": cases}


def main() -> None:
    v1 = MODELS / "v1" / "tick_tiny.onnx"
    if not v1.exists() or "--models" in sys.argv:  # re-export only on request: sha256s are pinned elsewhere
        v1 = export_tiny(1, MODELS / "v1")
        export_tiny(2, MODELS / "v2")
    GOLDEN.parent.mkdir(parents=True, exist_ok=True)
    GOLDEN.write_text(json.dumps(signal_cases(v1), indent=1) + "\n")
    KELLY.write_text(json.dumps(kelly_cases(), indent=1) + "\n")
    print(f"wrote {GOLDEN}, {KELLY}")


if __name__ == "__main__":
    main()
