"""POST /score over loopback: latency percentiles at a fixed rate and the maximum request rate.

The API runs in its own process (uvicorn, one worker) on a scratch lake holding one symbol's
``tick_v1`` rows in gold; the load generator is a second process (asyncio + httpx, open loop: a
request is sent every 1/rate seconds whether or not the previous one answered, so queueing shows
in the tail). Baseline in the same run: ``GET /health`` (the framework's floor, no lake, no model)
and the model call alone (onnxruntime, batch 1) in this process.

    .venv/bin/python benchmarks/api.py [--rate 500] [--seconds 10] [--mode asof]

``mode=latest`` needs a scorer answering ``score.v1.request`` (run it under ``mps up``); ``asof``
reads gold and runs the champion's ONNX in the API (the path exercised here by default).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
MODEL = ROOT / "contracts/models/tick_tiny/v1/tick_tiny.onnx"
END = datetime(2026, 11, 2, 15, 0, tzinfo=UTC)


def seed_lake(root: str, n: int = 600) -> None:
    """Write ``n`` seconds of synthetic tick_v1 rows for SIM1:SIM into gold.tick_features."""
    import polars as pl

    from feature_store.tick_features import FEATURE_NAMES, FEATURE_SET, write_features
    from lakehouse.storage import Lake

    rng = np.random.default_rng(7)
    ts = [END - timedelta(seconds=n - 1 - i) for i in range(n)]
    cols = {name: rng.normal(0, 1, n) for name in FEATURE_NAMES}
    df = pl.DataFrame(
        {
            "symbol_id": ["SIM1:SIM"] * n,
            "tf": ["1s"] * n,
            "ts": ts,
            "known_at": ts,
            "feature_set": [FEATURE_SET] * n,
            **cols,
        }
    )
    write_features(Lake(root), df.with_columns(pl.col("ts", "known_at").dt.cast_time_unit("ns")))


def generator(url: str, token: str, body: bytes, rate: float, seconds: float, conc: int, out) -> None:
    """Open loop at ``rate`` (or closed loop with ``conc`` workers when rate == 0); put latencies (ms) in ``out``."""
    import httpx

    async def run() -> list[float]:
        lat: list[float] = []
        errors = 0
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
        async with httpx.AsyncClient(timeout=10, limits=limits) as client:

            async def one():
                nonlocal errors
                t0 = time.perf_counter()
                try:
                    r = await client.post(url, content=body, headers=headers) if body else await client.get(url)
                except httpx.HTTPError as exc:
                    errors += 1
                    if errors == 1:
                        print(f"first error: {type(exc).__name__} {exc}", flush=True)
                    return
                if r.status_code != 200:
                    errors += 1
                    return
                lat.append((time.perf_counter() - t0) * 1e3)

            t_end = time.perf_counter() + seconds
            if rate > 0:
                tasks, k, t0 = [], 0, time.perf_counter()
                while time.perf_counter() < t_end:
                    due = t0 + k / rate
                    delay = due - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    tasks.append(asyncio.create_task(one()))
                    k += 1
                await asyncio.gather(*tasks)
            else:

                async def worker():
                    while time.perf_counter() < t_end:
                        await one()

                await asyncio.gather(*(worker() for _ in range(conc)))
        return lat + [-1.0] * errors

    out.put(asyncio.run(run()))


def load(url, token, body, rate, seconds, conc=32) -> dict:
    q: mp.Queue = mp.get_context("spawn").Queue()
    p = mp.get_context("spawn").Process(target=generator, args=(url, token, body, rate, seconds, conc, q))
    t0 = time.perf_counter()
    p.start()
    lat = q.get()
    p.join()
    wall = time.perf_counter() - t0
    errors = sum(1 for x in lat if x < 0)
    ok = np.array([x for x in lat if x >= 0])
    if ok.size == 0:
        return {
            "n": len(lat),
            "errors": errors,
            "req_s": 0.0,
            "p50": float("nan"),
            "p99": float("nan"),
            "max": float("nan"),
        }
    return {
        "n": len(lat),
        "errors": errors,
        "req_s": len(ok) / min(wall, seconds + 1),
        "p50": float(np.percentile(ok, 50)),
        "p99": float(np.percentile(ok, 99)),
        "max": float(ok.max()),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=float, default=500)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--mode", default="asof", choices=["asof", "latest"])
    args = ap.parse_args()

    import signal

    from mps.api.auth import issue_token
    from mps.api.settings import ApiSettings
    from mps.processes import free_port, terminate

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally below: never orphan the server
    tmp = tempfile.mkdtemp(prefix="mps-bench-api-")
    seed_lake(tmp)
    keys = f"bench:{'s' * 40}"
    port = free_port()
    env = {
        **os.environ,
        "MPS_API_KEYS": keys,
        "MPS_LAKE_ROOT": tmp,
        "MPS_MODEL_PATH": str(MODEL),
        "PYTHONPATH": str(ROOT),
    }
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        "mps.api.app:app_factory",
        "--factory",
        "--port",
        str(port),
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    server = subprocess.Popen(cmd, env=env, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        import httpx

        for _ in range(200):
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        token = issue_token(ApiSettings(keys={"bench": "s" * 40}), "bench", ["read:signals"], realtime=True, ttl_s=3600)
        body = json.dumps({"symbol_id": "SIM1:SIM", "mode": args.mode, "asof": END.isoformat()}).encode()
        warm = httpx.post(
            f"{base}/score",
            content=body,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            timeout=30,
        )
        assert warm.status_code == 200, warm.text
        print(f"one signal: prob_up={warm.json()['signal'].get('prob_up'):.4f}")
        model_ms = model_only()
        print(f"baseline  model call alone (onnxruntime, batch 1): p50 {model_ms[0]:.3f} ms p99 {model_ms[1]:.3f} ms")
        for name, url, b in (
            ("GET /health", f"{base}/health", b""),
            (f"POST /score {args.mode}", f"{base}/score", body),
        ):
            r = load(url, token, b, args.rate, args.seconds)
            print(
                f"{name:22} at {args.rate:.0f} req/s: p50 {r['p50']:.2f} ms  p99 {r['p99']:.2f} ms  max {r['max']:.1f} ms"
                f"  achieved {r['req_s']:.0f} req/s  errors {r['errors']}"
            )
            m = load(url, token, b, 0, args.seconds / 2)
            print(
                f"{name:22} max throughput (32 concurrent): {m['req_s']:.0f} req/s  p50 {m['p50']:.2f} ms"
                f"  p99 {m['p99']:.2f} ms  errors {m['errors']}"
            )
        print("targets: p99 <= 5 ms at 500 req/s; cores:", os.cpu_count())
    finally:
        terminate(server, 10)


def model_only() -> tuple[float, float]:
    import onnxruntime as ort

    s = ort.InferenceSession(str(MODEL), providers=["CPUExecutionProvider"])
    x = np.zeros((1, 60, 12), dtype=np.float32)
    lat = []
    for _ in range(500):
        t0 = time.perf_counter()
        s.run(["probs"], {"features": x})
        lat.append((time.perf_counter() - t0) * 1e3)
    return float(np.percentile(lat, 50)), float(np.percentile(lat, 99))


if __name__ == "__main__":
    main()
