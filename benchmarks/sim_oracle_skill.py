"""Skill on the market simulator: each model's share of the oracle's log-score gain over climatology.

The simulator (lakehouse.sources) draws regime-switching volatility and persistent order flow; its
latent state (``sim_latent``) gives the oracle forecaster (``training.oracle``). Features are what
a clean tape shows each second (from the true prints and the quote mid): the 1 s log return of the
last trade, signed flow, trade count, last trade sign, the last trade's premium over the mid, and
|return|. Labels are the last trade price's log return over each horizon (as silver bars are), in
101 buckets of 1 bp. Walk-forward by day with ``training.evaluate`` (same folds for every model).

    nice .venv/bin/python benchmarks/sim_oracle_skill.py [--days 6] [--minutes 60] [--stride 2] [--transformer]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
if sys.path[0] != str(ROOT):  # benchmarks/training.py must not shadow the training package
    sys.path.insert(0, str(ROOT))

if TYPE_CHECKING:
    from training.models.base import DistributionModel

warnings.filterwarnings("ignore")
HORIZONS = (1, 5, 10, 30, 60, 120, 300, 600)
FEATURES = ("ret_1s", "flow_1s", "n_trades", "last_sign", "premium_bps", "abs_ret_1s")


def session_arrays(truth, lookback: int, stride: int):
    """(X windows, y buckets-ready returns in bps, decision indices) for one simulated session."""
    g = truth.grid_ns
    n = len(g)
    last = np.searchsorted(truth.trade_ts, g, side="left") - 1
    px = np.where(last >= 0, truth.trade_price[np.maximum(last, 0)], truth.price)
    sign = np.where(last >= 0, truth.trade_side[np.maximum(last, 0)], 0).astype(np.float64)
    step_of = np.searchsorted(g, truth.trade_ts, side="right") - 1  # the step each print falls in
    flow = np.bincount(step_of, weights=truth.trade_side * np.sqrt(truth.trade_size / 100.0), minlength=n)
    count = np.bincount(step_of, minlength=n).astype(np.float64)
    ret = np.concatenate([[0.0], np.diff(np.log(px))]) * 1e4
    feats = np.stack(
        [
            ret,
            np.concatenate([[0.0], flow[:-1]]),  # prints of the step that just closed
            np.concatenate([[0.0], count[:-1]]),
            sign,
            np.log(px / truth.price) * 1e4,
            np.abs(ret),
        ],
        axis=1,
    ).astype(np.float32)
    s = np.arange(lookback - 1, n - max(HORIZONS), stride)
    X = feats[s[:, None] - np.arange(lookback - 1, -1, -1)[None, :]]
    r = np.stack([1e4 * np.log(px[s + h] / px[s]) for h in HORIZONS], axis=1)
    return X, r, g[s]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--days", type=int, default=6)
    ap.add_argument("--minutes", type=int, default=60)
    ap.add_argument("--stride", type=int, default=2)
    ap.add_argument("--lookback", type=int, default=30)
    ap.add_argument("--transformer", action="store_true")
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--out", default="/tmp/mps-sim-skill")
    args = ap.parse_args()

    from lakehouse.sources.sim_config import SimParams
    from lakehouse.sources.sim_latent import latent_frame
    from lakehouse.sources.simulator import simulate_days
    from training.evaluate import EvalConfig, EvalData, evaluate
    from training.models.base import Buckets, default_edges_bps
    from training.models.climatology import Climatology
    from training.models.ewma_t import EwmaT, EwmaTConfig
    from training.models.lightgbm_buckets import LightGBMBuckets
    from training.oracle import oracle_proba
    from training.splits import WalkForwardConfig

    t0 = time.perf_counter()
    params = SimParams(symbols=["SIM1:SIM"], n_days=args.days, session_minutes=args.minutes, tables=["sim_truth"])
    buckets = Buckets(default_edges_bps())
    parts = [
        session_arrays(truth, args.lookback, args.stride) + (i,)
        for i, (_, _, truth) in enumerate(simulate_days(params))
    ]
    X = np.concatenate([p[0] for p in parts])
    r = np.concatenate([p[1] for p in parts])
    ts = np.concatenate([p[2] for p in parts])
    day = np.concatenate([np.full(len(p[0]), p[3]) for p in parts])
    y = buckets.index(r)
    dyn = params.dynamics
    oracle = oracle_proba(
        latent_frame(params, "SIM1:SIM"),
        ts,
        HORIZONS,
        buckets.edges_bps,
        sign_persistence=dyn.sign_persistence,
        jump_bps=dyn.jump_bps,
        tick_size=1e-12,  # labels here are unrounded true prints
        observation="trade",
    )
    print(f"simulated {len(X)} windows over {args.days} sessions in {time.perf_counter() - t0:.1f}s")
    data = EvalData(
        X=X, y=y, times=ts, label_end=ts + max(HORIZONS) * 1_000_000_000, day=day, buckets=buckets,
        r_bps=r, horizons=HORIZONS, oracle=oracle,
    )  # fmt: skip
    models: dict[str, Callable[[], DistributionModel]] = {"lightgbm": lambda: LightGBMBuckets(buckets)}
    if args.transformer:
        from training.models.transformer import PriceTransformer, TransformerConfig

        tcfg = TransformerConfig(max_epochs=args.epochs, ret_feature=0, ret_unit_bps=1.0)  # ret_1s is in bps here
        models["transformer"] = lambda: PriceTransformer(buckets, tcfg)
    ewma = EwmaTConfig(ret_feature=0, ret_unit_bps=1.0)  # ret_1s is already in bps
    baselines: dict[str, Callable[[], DistributionModel]] = {
        "climatology": lambda: Climatology(buckets),
        "ewma_t": lambda: EwmaT(buckets, ewma),
    }
    cfg = EvalConfig(folds=WalkForwardConfig(n_folds=2, min_train_units=max(args.days // 2, 2)), n_boot=500)
    res = evaluate(data, models, baselines, cfg)
    pl.Config.set_tbl_rows(100)
    pl.Config.set_tbl_cols(20)
    print(
        res.scores.filter(pl.col("fold") == "all")
        .pivot(on="metric", index=["model", "horizon"], values="value")
        .select("model", "horizon", "log_score", "ece")
        .sort("horizon", "log_score")
    )
    print(res.diffs.filter(pl.col("metric") == "log_score").drop("metric").sort("baseline", "horizon", "model"))
    print(res.skill.sort("horizon", "model"))
    print(f"total {time.perf_counter() - t0:.1f}s")


if __name__ == "__main__":
    main()
