"""The promotion gates checked against the simulator's oracle on demo-sized test sets.

A gate that refuses the true distribution judges noise, not the model. This draws demo-sized test
sets (3 symbols x 2 sessions of 45 minutes, the demo market's informed flow), forecasts them with
the oracle (``training.oracle``, which knows the latent volatility and flow; mid-quote labels), and
runs them through the ECE gate (one window per horizon, against chance) and the Sharpe gate (the
60 s forecasts sized with the tick model's sizing contract and held for the horizon, backtested
over the latent mid with the strategy's costs). It prints each set's verdicts.

    .venv/bin/python benchmarks/oracle_gates.py [--sets 8] [--bias 0.15]
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
if sys.path[0] != str(ROOT):  # benchmarks/training.py must not shadow the training package
    sys.path.insert(0, str(ROOT))

HORIZONS = (1, 5, 10, 30, 60, 120, 300, 600)
SYMBOLS = ("SIM1:SIM", "SIM2:SIM", "SIM3:SIM")


def test_set(seed: int, bias: float, buckets):
    """Oracle forecasts, labels, days (sorted by day, then symbol, then time) and the backtest inputs."""
    from lakehouse.sources.sim_config import Dynamics, SimParams
    from lakehouse.sources.sim_latent import latent_frame
    from training.oracle import oracle_proba

    dyn = Dynamics(informed_bias=bias, informed_half_life_s=120.0)
    params = SimParams(
        symbols=list(SYMBOLS), n_days=2, session_minutes=45, trades_per_day=56_000, tables=["sim_truth"],
        seed=100 + seed, dynamics=dyn,
    )  # fmt: skip
    probs, labels, days, syms, stamps, bars = [], [], [], [], [], []
    for sym in SYMBOLS:
        lat = latent_frame(params, sym).sort("ts")
        ts = lat["ts"].dt.epoch("ns").to_numpy()
        day = lat["day"].cast(pl.Int32).to_numpy()
        mid = lat["mid"].to_numpy()
        idx = np.concatenate([np.flatnonzero(day == d)[: -max(HORIZONS)] for d in np.unique(day)])
        probs.append(
            oracle_proba(
                lat,
                ts[idx],
                HORIZONS,
                buckets.edges_bps,
                sign_persistence=dyn.sign_persistence,
                jump_bps=dyn.jump_bps,
                observation="mid",
            )  # fmt: skip
        )
        labels.append(buckets.index(np.stack([1e4 * np.log(mid[idx + h] / mid[idx]) for h in HORIZONS], axis=1)))
        days.append(day[idx])
        syms.append(np.full(len(idx), sym))
        stamps.append(ts[idx])
        prev = np.concatenate([[mid[0]], mid[:-1]])
        bars.append(
            pl.DataFrame(
                {
                    "symbol_id": sym,
                    "ts": lat["ts"],
                    "open": prev,
                    "high": np.maximum(prev, mid),
                    "low": np.minimum(prev, mid),
                    "close": mid,
                    "volume": lat["trades_per_step"].to_numpy() * params.dynamics.mean_size,
                }
            )  # fmt: skip
        )
    day_all = np.concatenate(days)
    order = np.lexsort((np.arange(len(day_all)), day_all))  # the evidence's order: day, symbol, time
    p = np.concatenate(probs)
    return (
        p[order],
        np.concatenate(labels)[order],
        day_all[order],
        p,
        np.concatenate(syms),
        np.concatenate(stamps),
        pl.concat(bars),
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sets", type=int, default=8)
    ap.add_argument("--bias", type=float, default=0.15, help="informed-flow bias of the demo market")
    args = ap.parse_args()

    from backtest.forecast_sharpe import forecast_sharpe
    from backtest.sizing import SizingConfig
    from core.strategy import load_strategy
    from training.gates import PASS, SharpeEvidence, ece_gate, sharpe_gate
    from training.models.base import Buckets, default_edges_bps

    buckets = Buckets(default_edges_bps())
    strategy = load_strategy()
    # the latent mid has no feature row to read the vol from: no vol targeting here
    sizing = replace(SizingConfig.load(strategy.sizing_path("specs-tick")), realized_vol_feature=None)
    h60 = HORIZONS.index(sizing.horizon)
    passed = {"ece": 0, "sharpe": 0}
    for seed in range(args.sets):
        probs, y, days, p_time, syms, stamps, bars = test_set(seed, args.bias, buckets)
        ece = ece_gate(probs, y, days, buckets.edges_bps, strategy.promotion.max_ece, HORIZONS)
        fs = forecast_sharpe(
            p_time[:, h60, :], syms, stamps, bars, buckets.edges_bps, sizing, strategy.backtest, hold=sizing.horizon
        )
        sharpe = sharpe_gate(SharpeEvidence(fs.sharpe, fs.lower, fs.upper, fs.sigma, fs.sessions), 0.0)
        passed["ece"] += ece.status == PASS
        passed["sharpe"] += sharpe.status == PASS
        print(
            f"set {seed}: ECE {ece.status} (worst {ece.value:.3f} vs allowed {ece.threshold:.3f}); Sharpe "
            f"{sharpe.status} {fs.sharpe:.2f} [{fs.lower:.2f}, {fs.upper:.2f}], {fs.trades} trades, "
            f"mean |size| {fs.mean_abs_size:.4f}",
            flush=True,
        )
    print(f"oracle passes: ECE {passed['ece']} of {args.sets}, Sharpe {passed['sharpe']} of {args.sets}")


if __name__ == "__main__":
    main()
