"""Benchmark: ingest simulated trades into bronze with the MPS engine vs a plain pandas ingest.

The data (default 20 million trade prints from the simulator's three vendors) is generated once into
Parquet files in a temp directory, so generation is excluded and both paths read identical files.
Each path runs in its own spawned process (peak RSS is per path, from ``ru_maxrss``) and writes to
its own fresh lake; library imports are warmed before the clock starts. Both apply the same rules:
nulls, finite, price > 0, size >= 0, ts order per symbol, unknown symbols, dedupe within the batch,
anti-join against keys already stored, lineage columns, Delta append partitioned by (source, date). Targets (reported, not asserted): >= 1M rows/s
on 2 cores, peak RSS < 2 GB, >= 5x pandas.

    python benchmarks/ingest.py [--trades 20000000] [--cores 2] [--profile] [--skip-pandas]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from multiprocessing import get_context
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CLOCK_AT = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def generate(directory: Path, n_trades: int, seed: int, symbols: int, days: int) -> list[tuple[str, list[str]]]:
    """Write ``n_trades`` simulated trade prints to Parquet; return [(batch_id, [files])] in order."""
    import polars as pl

    from lakehouse.sources import simulator as sim

    n_vendors = len(sim.Params().vendors)
    per_day = math.ceil(n_trades / (n_vendors * symbols * days) * 1.03)  # gaps drop a few rows
    params = sim.Params(
        symbols=[f"SIM{i + 1}:SIM" for i in range(symbols)],
        n_days=days,
        trades_per_day=per_day,
        seed=seed,
        tables=["trades"],
        chunk_rows=1_000_000,
    )
    manifest: list[tuple[str, list[str]]] = []
    left, k = n_trades, 0
    for batch in sim.batches(params):
        files = []
        for chunk in batch.chunks:
            if left <= 0:
                break
            df: pl.DataFrame = chunk.data.head(left)
            path = directory / f"{k:05d}.parquet"
            df.write_parquet(path, statistics=False)
            files.append(str(path))
            left -= df.height
            k += 1
        if files:
            manifest.append((batch.batch_id, files))
        if left <= 0:
            break
    return manifest


def _pin(cores: int | None) -> None:
    """Restrict this process to ``cores`` CPUs and warm the imports both paths share (not timed)."""
    if cores:
        os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[:cores]))
    import deltalake  # noqa: F401
    import pandas  # noqa: F401  (pyarrow imports it on first use anyway)
    import polars  # noqa: F401


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_engine(manifest, root: str, cores: int | None, profile: bool) -> dict:
    """Ingest through lakehouse.ingest.Ingestor (runs in a spawned child)."""
    _pin(cores)
    import polars as pl

    from lakehouse.ingest import Batch, Chunk, Ingestor
    from lakehouse.security_master import known_symbols
    from lakehouse.storage import Lake
    from lakehouse.tables import BRONZE_TRADES

    ingestor = Ingestor(Lake(root), lambda: CLOCK_AT, known_symbols())

    def batches():
        for batch_id, files in manifest:
            yield Batch(
                "simulator", f"bench://{batch_id}", batch_id, (Chunk(BRONZE_TRADES, pl.read_parquet(f)) for f in files)
            )

    t0 = time.perf_counter()
    if profile:
        import cProfile
        import pstats

        prof = cProfile.Profile()
        report = prof.runcall(ingestor.run, batches())
        pstats.Stats(prof).sort_stats("cumulative").print_stats(30)
    else:
        report = ingestor.run(batches())
    seconds = time.perf_counter() - t0
    assert report.balanced and not report.failures, report.lines()
    return {
        "rows": report.total("rows_read"),
        "written": report.total("rows_written"),
        "quarantined": report.total("quarantined"),
        "seconds": seconds,
        "rss_mb": _peak_rss_mb(),
    }


def run_pandas(manifest, root: str, cores: int | None) -> dict:
    """The same ingest written plainly with pandas + deltalake (runs in a spawned child)."""
    _pin(cores)
    t0 = time.perf_counter()
    totals = pandas_ingest(manifest, root)
    return {**totals, "seconds": time.perf_counter() - t0, "rss_mb": _peak_rss_mb()}


def _pandas_reasons(df, spec, known: frozenset[str]):
    """First failing check per row (None when valid), in the engine's order of checks."""
    import numpy as np
    import pandas as pd

    checks = []
    for c in spec.payload_columns:
        if c.name not in df.columns:
            continue
        x = df[c.name]
        if not c.nullable:
            checks.append((x.isna().to_numpy(), f"{c.name} is missing"))
        if c.is_float and c.finite:
            checks.append(((x.notna() & ~np.isfinite(x.astype("float64"))).to_numpy(), f"{c.name} is not finite"))
        if c.positive:
            checks.append(((x <= 0).fillna(False).to_numpy(bool), f"{c.name} must be > 0"))
        if c.non_negative:
            checks.append(((x < 0).fillna(False).to_numpy(bool), f"{c.name} must be >= 0"))
    sym = df["symbol_id"]
    checks.append((~sym.isin(known).to_numpy(), None))
    prev = df.groupby("symbol_id", sort=False)["ts"].cummax().groupby(sym, sort=False).shift(1)
    checks.append(((df["ts"] < prev).fillna(False).to_numpy(bool), "ts goes backwards (out of order)"))
    reasons = pd.Series(None, index=df.index, dtype=object)
    for mask, text in reversed(checks):  # first failing check wins
        if mask.any():
            reasons[mask] = ("unknown symbol " + sym[mask]) if text is None else text
    return reasons


def pandas_ingest(manifest, root: str) -> dict:
    """Validate, dedupe, anti-join and append each file with pandas; return the account totals."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc
    from deltalake import DeltaTable, write_deltalake
    from deltalake.exceptions import TableNotFoundError

    from lakehouse.security_master import known_symbols
    from lakehouse.tables import BRONZE_QUARANTINE
    from lakehouse.tables import BRONZE_TRADES as spec

    known = known_symbols()
    keys, uri, quri = list(spec.keys), f"{root}/bronze/trades", f"{root}/bronze/quarantine"
    ingest_ts = pd.Timestamp(CLOCK_AT)
    totals = {"rows": 0, "written": 0, "quarantined": 0, "duplicates": 0}
    for batch_id, files in manifest:
        offset = 0  # row numbers run on across the files of a batch, as in the engine
        for f in files:
            df = pd.read_parquet(f, dtype_backend="numpy_nullable")
            totals["rows"] += len(df)
            reasons = _pandas_reasons(df, spec, known)
            bad, good = df[reasons.notna()], df[reasons.isna()]
            key_dup = good.duplicated(keys, keep="first")
            row_dup = good.duplicated([c for c in good.columns if not c.startswith("_")], keep="first")
            conflicts = good[key_dup & ~row_dup]
            good = good[~key_dup]
            totals["duplicates"] += int((key_dup & row_dup).sum())
            good = good.assign(ingest_ts=ingest_ts, batch_id=batch_id, date=good["ts"].dt.strftime("%Y-%m-%d"))
            try:
                dt = DeltaTable(uri)
            except TableNotFoundError:
                dt = None
            if dt is not None and len(good):
                ts_ns = good["ts"].astype("int64")
                expr = (
                    pc.field("source").isin(good["source"].unique().tolist())
                    & pc.field("date").isin(good["date"].unique().tolist())
                    & (pc.field("ts") >= int(ts_ns.min()))
                    & (pc.field("ts") <= int(ts_ns.max()))
                )
                existing = dt.to_pyarrow_dataset().to_table(columns=keys, filter=expr).to_pandas()
                if len(existing):
                    existing["ts"] = pd.to_datetime(existing["ts"], utc=True)
                    merged = good.merge(existing, on=keys, how="left", indicator=True)
                    fresh = good[(merged["_merge"] == "left_only").to_numpy()]
                    totals["duplicates"] += len(good) - len(fresh)
                    good = fresh
            if len(good):
                out = good[spec.column_names].assign(
                    ts=good["ts"].astype("int64"), ingest_ts=good["ingest_ts"].astype("int64")
                )
                write_deltalake(
                    uri,
                    pa.Table.from_pandas(out, schema=spec.physical_schema, preserve_index=False),
                    mode="append",
                    partition_by=list(spec.partition_by),
                )
                totals["written"] += len(good)
            rejected = pd.concat(
                [
                    bad.assign(reason=reasons[reasons.notna()]),
                    conflicts.assign(reason="duplicate key with different values: " + ", ".join(keys)),
                ]
            )
            if len(rejected):
                raw = rejected.drop(columns="reason").to_json(orient="records", lines=True).splitlines()
                q = pd.DataFrame(
                    {
                        "source": rejected["source"].to_numpy(),
                        "table": spec.qualified,
                        "file": f,
                        "row": rejected.index.to_numpy() + offset + 1,
                        "raw": raw,
                        "reason": rejected["reason"].to_numpy(),
                        "ingest_ts": ingest_ts.value,
                        "batch_id": batch_id,
                    }
                )
                q_table = pa.Table.from_pandas(q, schema=BRONZE_QUARANTINE.physical_schema, preserve_index=False)
                write_deltalake(quri, q_table, mode="append", partition_by=["source"])
                totals["quarantined"] += len(q)
            offset += len(df)
    return totals


def _in_child(fn, *args) -> dict:
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def _lake_summary(root: str) -> tuple[int, float]:
    import pyarrow.compute as pc

    from lakehouse.storage import Lake
    from lakehouse.tables import BRONZE_TRADES

    t = Lake(root).read_arrow(BRONZE_TRADES, columns=["price"])
    return t.num_rows, round(pc.sum(t.column("price")).as_py() or 0.0, 2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trades", type=int, default=20_000_000)
    ap.add_argument("--symbols", type=int, default=2)
    ap.add_argument("--days", type=int, default=5)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--cores", type=int, default=None, help="pin each path to this many CPUs")
    ap.add_argument("--profile", action="store_true", help="cProfile the engine path")
    ap.add_argument("--skip-pandas", action="store_true")
    ap.add_argument("--workdir", default=None, help="where to put data and lakes (default: a temp dir)")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="mps-bench-", dir=args.workdir))
    try:
        data = work / "data"
        data.mkdir()
        t0 = time.perf_counter()
        manifest = _in_child(generate, data, args.trades, args.seed, args.symbols, args.days)
        gen_s = time.perf_counter() - t0
        n_files = sum(len(f) for _, f in manifest)
        print(
            f"generated {args.trades:,} trades in {n_files} files ({len(manifest)} batches) in {gen_s:.1f}s"
            f" (excluded); cores: {args.cores or os.cpu_count()}"
        )
        results = {
            "engine (polars)": _in_child(run_engine, manifest, str(work / "lake_engine"), args.cores, args.profile)
        }
        if not args.skip_pandas:
            results["pandas"] = _in_child(run_pandas, manifest, str(work / "lake_pandas"), args.cores)
        print(f"\n{'path':<16}{'rows':>14}{'seconds':>10}{'rows/s':>14}{'peak RSS MB':>13}")
        for name, r in results.items():
            rate = r["rows"] / r["seconds"]
            print(f"{name:<16}{r['rows']:>14,}{r['seconds']:>10.2f}{rate:>14,.0f}{r['rss_mb']:>13,.0f}")
        if "pandas" in results:
            e, p = results["engine (polars)"], results["pandas"]
            print(f"\nspeed ratio engine / pandas: {p['seconds'] / e['seconds']:.1f}x")
            same = _lake_summary(str(work / "lake_engine")) == _lake_summary(str(work / "lake_pandas"))
            print(f"lakes hold the same rows (count, sum of price): {same}")
        print(
            json.dumps(
                {k: {m: round(v, 3) if isinstance(v, float) else v for m, v in r.items()} for k, r in results.items()}
            )
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
