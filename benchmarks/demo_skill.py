"""Skill of the demo's promoted model: its share of the simulator oracle's log-score gain, per horizon.

Reads a finished ``make demo`` directory (``<state_dir>/demo``): the gold windows of its two test
days (the promotion evidence, same order), the evidence's forecasts (the exported model run through
onnxruntime, climatology and EWMA-t), and the oracle (``training.oracle``: the latent volatility and
informed flow of the same simulated sessions, mid-quote observation) at every test window. Skill =
(LS_climatology - LS_model) / (LS_climatology - LS_oracle): 1 is the oracle, 0 climatology.

A gold row stamped T carries the quote mid as of the end of second T, which is the latent mid of
the step starting at T + 1 s; the script prints the oracle's log score at both alignments (the
later one should win) and uses the better one.

    .venv/bin/python benchmarks/demo_skill.py [--demo-dir .mps/demo]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
if sys.path[0] != str(ROOT):  # benchmarks/training.py must not shadow the training package
    sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--demo-dir", type=Path, default=ROOT / ".mps" / "demo")
    ap.add_argument("--model", default="specs-tick")
    args = ap.parse_args()

    from core.strategy import load_strategy
    from lakehouse.sources.sim_config import SimParams
    from lakehouse.sources.sim_latent import latent_frame
    from lakehouse.storage import Lake
    from mps.demo import DemoConfig
    from training.candidate import load_evidence
    from training.dataset import load_windows
    from training.gates import sample_log_score
    from training.models.base import Buckets, default_edges_bps
    from training.oracle import oracle_proba

    cfg = DemoConfig()
    spec = next(m for m in load_strategy().models if m.name == args.model)
    evidence = sorted((args.demo_dir / "exports" / args.model).glob("v*.evidence.npz"))[-1]
    ev = load_evidence(evidence)
    lake = Lake(str(args.demo_dir / "lake"))
    data = load_windows(lake, spec.feature_set, "ret_tick_v1", spec.horizons, spec.lookback, list(cfg.symbols))
    test = np.isin(data["days"], np.unique(ev["days"]))
    keys, y = data["keys"].filter(pl.Series(test)), data["y"][test]
    if not np.array_equal(y, ev["y"]):
        raise SystemExit(f"{evidence}: its labels are not the lake's test windows (another lake or lookback?)")
    buckets = Buckets(default_edges_bps(spec.buckets.count, spec.buckets.lo_bps, spec.buckets.hi_bps))
    params = SimParams(**cfg.sim_params(), tables=["sim_truth"])
    dyn = params.dynamics
    ts = keys["ts"].dt.epoch("ns").to_numpy()
    sym = keys["symbol_id"].to_numpy()
    scores = {}
    for shift_s in (0, 1):
        oracle = np.empty_like(ev["probs.model"], dtype=np.float64)
        for s in cfg.symbols:
            rows = np.flatnonzero(sym == s)
            oracle[rows] = oracle_proba(
                latent_frame(params, s), ts[rows] + shift_s * 1_000_000_000, tuple(spec.horizons),
                buckets.edges_bps, sign_persistence=dyn.sign_persistence, jump_bps=dyn.jump_bps,
                observation="mid",
            )  # fmt: skip
        scores[shift_s] = sample_log_score(oracle, y).mean(axis=0)
        print(f"oracle aligned at +{shift_s} s: log score {np.round(scores[shift_s], 3).tolist()}")
    best = min(scores, key=lambda k: float(scores[k].mean()))
    ls = {
        name.removeprefix("probs."): sample_log_score(p, y).mean(axis=0)
        for name, p in ev.items()
        if name.startswith("probs.")
    }
    ls["oracle"] = scores[best]
    table = pl.DataFrame({"horizon_s": spec.horizons, **{k: v for k, v in sorted(ls.items())}})
    clim = ls["climatology"]
    gain = clim - ls["oracle"]
    for name in ("model", "ewma_t"):
        table = table.with_columns(pl.Series(f"skill_{name}", np.where(gain > 0, (clim - ls[name]) / gain, np.nan)))
    pl.Config.set_tbl_rows(20)
    pl.Config.set_tbl_cols(20)
    print(f"{evidence.name}: {len(y):,} test windows, oracle aligned at +{best} s")
    print(table)


if __name__ == "__main__":
    main()
