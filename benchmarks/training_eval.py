"""Walk-forward evaluation on the synthetic learnable market: every model against the baselines and the oracle.

Prints the pooled scores, log-score gains over each baseline with day-block bootstrap CIs, conformal
coverage and each model's share of the oracle's gain over climatology; writes the Markdown report
with its figures to ``--out``.

    nice .venv/bin/python benchmarks/training_eval.py --out /tmp/mps-eval [--steps 12000] [--epochs 8]
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import polars as pl

warnings.filterwarnings("ignore")
# this script's directory must not shadow the training package; the repository root must be importable
ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="/tmp/mps-training-eval")
    ap.add_argument("--steps", type=int, default=12_000)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--folds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    from training.evaluate import EvalConfig, EvalData, evaluate
    from training.models.base import Buckets, default_edges_bps
    from training.models.climatology import Climatology
    from training.models.ewma_t import EwmaT
    from training.models.garch_t import GarchT, GarchTConfig
    from training.models.lightgbm_buckets import LightGBMBuckets
    from training.models.transformer import PriceTransformer, TransformerConfig
    from training.report import write_report
    from training.splits import WalkForwardConfig
    from training.synthetic import SyntheticConfig, oracle_proba, simulate

    buckets = Buckets(default_edges_bps(41, -20, 20))
    horizons = (1, 4, 16)
    d = simulate(SyntheticConfig(n_steps=args.steps, lookback=32, horizons=horizons), buckets)
    data = EvalData(
        X=d.X, y=d.y, times=d.times, label_end=d.times + max(horizons), day=d.day, buckets=buckets,
        r_bps=d.r_bps, horizons=horizons, oracle=oracle_proba(d, buckets, n_paths=1000),
    )  # fmt: skip
    tcfg = TransformerConfig(max_epochs=args.epochs, num_threads=args.threads)
    models = {
        "lightgbm": lambda: LightGBMBuckets(buckets),
        "transformer": lambda: PriceTransformer(buckets, tcfg),
    }
    baselines = {
        "climatology": lambda: Climatology(buckets),
        "ewma_t": lambda: EwmaT(buckets),
        "garch_t": lambda: GarchT(buckets, GarchTConfig(horizon_steps=horizons)),
    }
    n_days = int(d.day.max()) + 1
    cfg = EvalConfig(folds=WalkForwardConfig(n_folds=args.folds, min_train_units=n_days // 2), n_boot=1000)
    res = evaluate(data, models, baselines, cfg)
    pl.Config.set_tbl_rows(100)
    pl.Config.set_tbl_cols(20)
    print(
        res.scores.filter(pl.col("fold") == "all")
        .pivot(on="metric", index=["model", "horizon"], values="value")
        .select("model", "horizon", "log_score", "rps", "crps_bps", "ece", "dir_acc", "ic")
        .sort("horizon", "log_score")
    )
    print(res.diffs.filter(pl.col("metric") == "log_score").drop("metric").sort("baseline", "horizon", "model"))
    print(res.coverage.group_by("model", "horizon").agg(pl.col("coverage").mean()).sort("model", "horizon"))
    print(res.skill.sort("horizon", "model"))
    print("report:", write_report(res, data.y, buckets, args.out, "Synthetic market, walk-forward"))


if __name__ == "__main__":
    main()
