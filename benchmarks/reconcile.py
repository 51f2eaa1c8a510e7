"""Benchmark: 3 vendors x N ticks -> 1-minute consensus bars, polars vs a pandas baseline.

The ticks (a random walk per symbol seen by three vendors with their own noise and bad prints,
24/7 calendar, fixed vendor weights) are written once to Parquet; each path then runs in its own
spawned process on at most 2 threads, reads them, and is timed from the loaded frame to the
consensus bars:
- polars: ``lakehouse.reconcile`` (``build_bars`` then ``consensus``);
- pandas: the same steps in plain pandas (``benchmarks/reconcile_pandas.py``);
- polars-job: the whole ``reconcile_window`` (cells, print screen, clock offsets, latency, bars,
  consensus, vendor stats), for the "whole job under 60 s on 2 cores" target.
Per path: wall and CPU seconds, ticks/s, peak RSS (the process high-water mark while it ran,
loaded input included) and the input's own RSS; then the largest difference between the polars
and pandas consensus bars, which must agree.

    .venv/bin/python benchmarks/reconcile.py --ticks 10000000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
VENDORS = ("v-a", "v-b", "v-c")
WEIGHTS = {"v-a": 1.0, "v-b": 0.5, "v-c": 2.0}
T0 = 1_670_889_600_000_000_000  # 2022-12-13 UTC
MINUTE = 60_000_000_000
COMPARED = ["open", "high", "low", "close", "volume", "vwap", "n_trades", "n_src"]


def make_ticks(n_per_vendor: int, n_symbols: int, seed: int = 3) -> dict[str, np.ndarray]:
    """Return columns of 3 x n_per_vendor ticks (ts ns, symbol index, vendor index, price, size)."""
    rng = np.random.default_rng(seed)
    per_sym = n_per_vendor // n_symbols
    ts = np.sort(T0 + rng.integers(0, per_sym * 100_000_000, per_sym))  # ~10 ticks/s
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


def write_ticks(path: Path, n_per_vendor: int, n_symbols: int) -> None:
    """Write the benchmark ticks (source, symbol_id, ts, price, size) as one Parquet file."""
    import polars as pl

    data = make_ticks(n_per_vendor, n_symbols)
    pl.DataFrame(
        {
            "source": pl.Series(data["vendor"]).replace_strict(dict(enumerate(VENDORS)), return_dtype=pl.String),
            "symbol_id": pl.Series(data["sym"]).cast(pl.String) + ":SIM",
            "ts": pl.Series(data["ts"]).cast(pl.Datetime("ns", "UTC")),
            "price": data["price"],
            "size": data["size"],
        }
    ).write_parquet(path)


def _rss_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _reset_peak() -> None:
    try:  # Linux: "5" resets the high-water mark to the current RSS (proc(5), clear_refs)
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def _window(ts_min, ts_max):
    return ts_min - timedelta(minutes=1), ts_max + timedelta(minutes=1)


def run_polars(path: Path, job: bool):
    """Load the ticks, then time build_bars + consensus (or the whole reconcile_window)."""
    import polars as pl

    from lakehouse.reconcile.bars import build_bars
    from lakehouse.reconcile.consensus import consensus
    from lakehouse.reconcile.pipeline import ReconcileConfig, reconcile_window
    from lakehouse.reconcile.vendor_stats import STATS_COLUMNS

    ticks = pl.read_parquet(path)
    calendars = {s: "24/7" for s in ticks["symbol_id"].unique().to_list()}
    weights = pl.DataFrame({"source": list(WEIGHTS), "w": list(WEIGHTS.values()), "latency_ms": [0.0] * 3}).join(
        pl.DataFrame({"symbol_id": list(calendars)}), how="cross"
    )
    start, end = _window(ticks["ts"].min(), ticks["ts"].max())
    # w = uptime * reliability / (latency + eps): prior stats that give the same weights
    prior = weights.select(
        "source",
        "symbol_id",
        pl.lit(start - timedelta(days=1)).alias("window_start"),
        pl.lit(start).alias("window_end"),
        "latency_ms",
        pl.lit(1.0).alias("uptime"),
        pl.col("w").alias("reliability"),
        pl.lit(0.0).alias("outlier_rate"),
        pl.lit(1).alias("n_obs"),
        pl.lit(start).alias("known_at"),
    ).select(STATS_COLUMNS)
    yield ticks.height
    if job:
        bars = reconcile_window(
            ticks, pl.DataFrame(), calendars, start, end, prior, ReconcileConfig(timeframes=("1m",))
        ).bars
    else:
        bars = consensus(build_bars(ticks, "1m", calendars).bars, weights).bars
    yield (
        bars.unnest("quality").select(
            "symbol_id", pl.col("ts").dt.epoch("ns"), *COMPARED[:-1], pl.col("n_src").cast(pl.Int64)
        )
    )


def run_pandas(path: Path, job: bool):
    """Load the ticks, then time the plain-pandas reconciliation."""
    import pandas as pd
    import polars as pl

    from benchmarks.reconcile_pandas import consensus, source_bars
    from lakehouse.calendars import sessions

    ticks = pd.read_parquet(path)
    ticks["ts"] = ticks["ts"].astype("int64")
    lo, hi = (datetime.fromtimestamp(int(t) / 1e9, UTC) for t in (ticks["ts"].min(), ticks["ts"].max()))
    table = (
        sessions("24/7", lo - timedelta(days=1), hi + timedelta(days=1))
        .select(pl.col("open").dt.epoch("ns"), pl.col("close").dt.epoch("ns"))
        .sort("open")
    )
    opens, closes = table["open"].to_numpy(), table["close"].to_numpy()
    weights = pd.DataFrame(
        [(s, sym, w, 0.0) for sym in ticks["symbol_id"].unique() for s, w in WEIGHTS.items()],
        columns=["source", "symbol_id", "w", "latency_ms"],
    )
    yield len(ticks)
    out = consensus(source_bars(ticks, opens, closes, MINUTE), weights, MINUTE)
    yield pl.from_pandas(out[["symbol_id", "ts", *COMPARED]]).with_columns(pl.col("n_trades", "n_src").cast(pl.Int64))


def child(impl: str, path: Path, out: Path) -> None:
    """Run one path; print its figures as JSON and write its consensus bars to ``out``."""
    steps = (run_pandas if impl == "pandas" else run_polars)(path, impl == "polars-job")
    rows = next(steps)
    input_mb = _rss_mb("VmRSS")
    _reset_peak()
    wall, cpu = time.perf_counter(), time.process_time()
    bars = next(steps)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    bars.write_parquet(out)
    print(
        json.dumps(
            {
                "impl": impl,
                "ticks": rows,
                "bars": bars.height,
                "wall_s": wall,
                "cpu_s": cpu,
                "peak_rss_mb": _rss_mb("VmHWM"),
                "input_rss_mb": input_mb,
            }
        )
    )


def compare(polars_out: Path, pandas_out: Path) -> dict[str, float]:
    """Return the largest absolute difference per compared column (and unmatched slots) of the two outputs."""
    import polars as pl

    a, b = pl.read_parquet(polars_out), pl.read_parquet(pandas_out)
    joined = a.join(b, on=["symbol_id", "ts"], how="full", suffix="_pd", coalesce=True)
    diffs = {c: joined.select((pl.col(c) - pl.col(f"{c}_pd")).abs().max()).item() or 0.0 for c in COMPARED}
    diffs["unmatched_slots"] = joined.filter(pl.col("open").is_null() | pl.col("open_pd").is_null()).height
    diffs["rel_price"] = (
        joined.select(
            pl.max_horizontal([((pl.col(c) - pl.col(f"{c}_pd")) / pl.col(c)).abs().max() for c in COMPARED[:4]])
        ).item()
        or 0.0
    )
    return diffs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ticks", type=int, default=10_000_000, help="ticks per vendor")
    ap.add_argument("--symbols", type=int, default=10)
    ap.add_argument(
        "--only", nargs="+", default=["polars", "pandas", "polars-job"], choices=["polars", "pandas", "polars-job"]
    )
    ap.add_argument("--child", choices=["polars", "pandas", "polars-job"])
    ap.add_argument("--data", type=Path)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    if args.child:
        return child(args.child, args.data, args.out)
    env = {
        **os.environ,
        "POLARS_MAX_THREADS": "2",
        "OMP_NUM_THREADS": "2",
        "OPENBLAS_NUM_THREADS": "2",
        "PYTHONPATH": str(ROOT),
    }
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "ticks.parquet"
        write_ticks(data, args.ticks, args.symbols)
        results = {}
        for impl in args.only:  # a fresh interpreter each: peak RSS is the path's own
            done = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--child",
                    impl,
                    "--data",
                    str(data),
                    "--out",
                    str(Path(tmp) / f"{impl}.parquet"),
                ],
                env=env,
                capture_output=True,
                text=True,
            )
            if done.returncode:
                sys.exit(f"{impl} failed:\n{done.stderr}")
            results[impl] = json.loads(done.stdout.strip().splitlines()[-1])
        diffs = (
            compare(Path(tmp) / "polars.parquet", Path(tmp) / "pandas.parquet")
            if {"polars", "pandas"} <= set(results)
            else None
        )
    total = 3 * args.ticks
    print(
        f"reconcile benchmark: 3 vendors x {args.ticks:,} ticks ({total:,} ticks), {args.symbols} symbols, "
        f"1m consensus bars, 2 threads"
    )
    for impl, r in results.items():
        print(
            f"  {impl:10s} wall {r['wall_s']:7.2f} s  cpu {r['cpu_s']:7.2f} s  {r['ticks'] / r['wall_s']:13,.0f} ticks/s "
            f"(cpu {r['ticks'] / r['cpu_s']:13,.0f})  peak RSS {r['peak_rss_mb']:7.0f} MB "
            f"(input {r['input_rss_mb']:6.0f} MB)  {r['bars']:,} bars"
        )
    if "polars" in results and "pandas" in results:
        p, q = results["polars"], results["pandas"]
        print(
            f"  polars vs pandas: {q['wall_s'] / p['wall_s']:.1f}x wall, {q['cpu_s'] / p['cpu_s']:.1f}x cpu, "
            f"{q['peak_rss_mb'] / p['peak_rss_mb']:.1f}x less peak RSS"
        )
        print("  max |polars - pandas|: " + ", ".join(f"{k} {v:.3g}" for k, v in diffs.items()))
        if diffs["unmatched_slots"] or diffs["rel_price"] > 1e-9 or diffs["n_src"] or diffs["n_trades"]:
            sys.exit("the two paths disagree")


if __name__ == "__main__":
    main()
