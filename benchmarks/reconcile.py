"""Benchmark: 3 vendors x N ticks -> 1-minute consensus bars, polars vs a pandas baseline.

Both implementations get the same synthetic ticks (a random walk per symbol seen by three vendors
with their own noise and bad prints, 24/7 calendar) and run the same reconciliation: minute bars
per vendor (OHLCV), weighted median per (symbol, minute, field), MAD outliers, re-median. Each
runs in its own process on at most 2 threads; the script prints rows/s, wall time and peak RSS.

    .venv/bin/python benchmarks/reconcile.py --ticks 10000000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
VENDORS = ("v-a", "v-b", "v-c")
WEIGHTS = {"v-a": 1.0, "v-b": 0.5, "v-c": 2.0}
K = 6.0


def make_ticks(n_per_vendor: int, n_symbols: int, seed: int = 3) -> dict[str, np.ndarray]:
    """Return columns of 3 x n_per_vendor ticks (ts ns, symbol index, vendor index, price, size)."""
    rng = np.random.default_rng(seed)
    per_sym = n_per_vendor // n_symbols
    t0 = 1_670_889_600_000_000_000  # 2022-12-13 UTC
    ts = np.sort(t0 + rng.integers(0, per_sym * 100_000_000, per_sym))  # ~10 ticks/s
    cols = {k: [] for k in ("ts", "sym", "vendor", "price", "size")}
    for s in range(n_symbols):
        true = 100 * np.exp(np.cumsum(rng.normal(0, 2e-5, per_sym)))
        for v in range(len(VENDORS)):
            price = true * (1 + rng.normal(0, 1e-5 * (v + 1), per_sym))
            bad = rng.random(per_sym) < 1e-4
            price[bad] *= 1 + rng.choice([-1, 1], bad.sum()) * rng.uniform(0.02, 0.1, bad.sum())
            cols["ts"].append(ts + rng.integers(0, 50_000_000, per_sym))
            cols["sym"].append(np.full(per_sym, s, np.int32))
            cols["vendor"].append(np.full(per_sym, v, np.int8))
            cols["price"].append(price)
            cols["size"].append(rng.exponential(100, per_sym))
    return {k: np.concatenate(v) for k, v in cols.items()}


def run_polars(data: dict[str, np.ndarray]) -> int:
    import polars as pl

    from lakehouse.reconcile.bars import build_bars
    from lakehouse.reconcile.consensus import consensus

    ticks = pl.DataFrame({
        "source": pl.Series(np.array(VENDORS)[data["vendor"]]), "symbol_id": pl.Series(data["sym"]).cast(pl.String) + ":SIM",
        "ts": pl.Series(data["ts"]).cast(pl.Datetime("ns", "UTC")), "price": data["price"], "size": data["size"]})
    calendars = {s: "24/7" for s in ticks["symbol_id"].unique().to_list()}
    weights = pl.DataFrame({"source": list(WEIGHTS), "w": list(WEIGHTS.values()), "latency_ms": [0.0] * 3}).join(
        pl.DataFrame({"symbol_id": list(calendars)}), how="cross")
    start = time.perf_counter()
    bars = build_bars(ticks, "1m", calendars).bars
    out = consensus(bars, weights).bars
    return out.height, time.perf_counter() - start


def _wmedian(values, weights):
    order = np.argsort(values, kind="stable")
    v, w = values[order], weights[order]
    return v[np.searchsorted(np.cumsum(w), w.sum() * (0.5 - 1e-12))]


def run_pandas(data: dict[str, np.ndarray]) -> int:
    import pandas as pd

    ticks = pd.DataFrame({"source": np.array(VENDORS)[data["vendor"]], "symbol_id": data["sym"],
                          "ts": data["ts"], "price": data["price"], "size": data["size"]})
    start = time.perf_counter()
    ticks["bar"] = (ticks["ts"] // 60_000_000_000 + 1) * 60_000_000_000
    ticks = ticks.sort_values(["source", "symbol_id", "ts"])
    bars = ticks.groupby(["source", "symbol_id", "bar"]).agg(
        open=("price", "first"), high=("price", "max"), low=("price", "min"), close=("price", "last"),
        volume=("size", "sum")).reset_index()
    bars["w"] = bars["source"].map(WEIGHTS)
    long = bars.melt(id_vars=["source", "symbol_id", "bar", "w"], value_vars=["open", "high", "low", "close"],
                     var_name="field", value_name="value")
    keys = ["symbol_id", "bar", "field"]

    def reconcile(g: pd.DataFrame) -> float:
        med = _wmedian(g["value"].to_numpy(), g["w"].to_numpy())
        dev = np.abs(g["value"].to_numpy() - med)
        sigma = max(1.4826 * np.median(dev), 0.05e-4 * med)
        keep = dev <= K * sigma
        return _wmedian(g["value"].to_numpy()[keep], g["w"].to_numpy()[keep])

    out = long.groupby(keys).apply(reconcile, include_groups=False).unstack("field")
    return len(out), time.perf_counter() - start


def child(impl: str, ticks: int, symbols: int) -> None:
    data = make_ticks(ticks, symbols)
    rows, seconds = (run_polars if impl == "polars" else run_pandas)(data)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"impl": impl, "bars": rows, "seconds": seconds, "peak_rss_mb": rss_mb}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ticks", type=int, default=10_000_000, help="ticks per vendor")
    ap.add_argument("--symbols", type=int, default=10)
    ap.add_argument("--child", choices=["polars", "pandas"])
    args = ap.parse_args()
    if args.child:
        return child(args.child, args.ticks, args.symbols)
    env = {**os.environ, "POLARS_MAX_THREADS": "2", "OMP_NUM_THREADS": "2", "PYTHONPATH": str(ROOT)}
    results = {}
    for impl in ("polars", "pandas"):
        done = subprocess.run([sys.executable, __file__, "--child", impl, "--ticks", str(args.ticks),
                               "--symbols", str(args.symbols)], env=env, capture_output=True, text=True, check=True)
        results[impl] = json.loads(done.stdout.strip().splitlines()[-1])
    total = 3 * args.ticks
    print(f"reconcile benchmark: 3 vendors x {args.ticks:,} ticks ({total:,} rows), {args.symbols} symbols, 1m bars")
    for impl, r in results.items():
        print(f"  {impl:7s} {r['seconds']:8.2f} s  {total / r['seconds']:14,.0f} rows/s  "
              f"peak RSS {r['peak_rss_mb']:8.0f} MB  ({r['bars']:,} consensus bars)")
    print(f"  speed-up polars / pandas: {results['pandas']['seconds'] / results['polars']['seconds']:.1f}x")


if __name__ == "__main__":
    main()
