"""Hostile inputs to the real scorer binary: each refused with its reason, and serving goes on.

Before the fixes: a far-future ts or a seq near 2^63 made every later update of the symbol "late";
wrong tf, negative seq and known_at < ts were scored; the per-symbol state grew without bound; a
pointer to a FIFO or /dev/zero blocked every later swap and SIGTERM; a relative URI, or a pointer
naming another model or version, was served; a restart without KV had no champion.
"""

from __future__ import annotations

import asyncio
import json
import os
import time

import nats
import pytest
from streaming_harness import MODEL_V1, MODEL_V2, features_subject, health, update

from feature_store.contract import STREAMING
from feature_store.messages import CORE_STREAMS, encode, ensure_streams, models_bucket
from mps.nats_server import NatsServer
from mps.scorer_process import ScorerProcess, scorer_binary
from training.onnx_export import champion_pointer, read_metadata, sha256_file


@pytest.fixture(scope="module")
def scorer_bin():
    return scorer_binary()


@pytest.fixture
def server(tmp_path):
    with NatsServer(store_dir=tmp_path / "nats") as s:
        yield s


async def _collect(nc, pattern: str, into: list) -> None:
    async def cb(msg):
        into.append(msg)

    await nc.subscribe(pattern, cb=cb)


async def _wait(items: list, n: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while len(items) < n and time.monotonic() < deadline:
        await asyncio.sleep(0.02)


def _raw(u, **changes) -> bytes:
    return json.dumps({**json.loads(encode(u)), **changes}).encode()


def test_bounded_inputs_are_refused_and_later_updates_still_score(server, scorer_bin, tmp_path):
    now = time.time_ns()
    a = features_subject("A:US")
    sequence = [
        (a, encode(update("A:US", 0, now)), None),
        (a, _raw(update("A:US", 1, now), ts=now + 3_600 * 10**9, known_at=now + 3_600 * 10**9), "future_ts"),
        (a, encode(update("A:US", 1, now + 1)), None),  # not "late": the future update changed nothing
        (a, encode(update("A:US", 1_000_000, now + 2)), "seq_jump"),
        (a, _raw(update("A:US", 2, now + 3), seq=2**62), "seq_jump"),
        (a, encode(update("A:US", 2, now + 4)), None),
        (STREAMING.subject("features", tf="1m", symbol="A:US"), _raw(update("A:US", 3, now + 5), tf="1m"), "wrong_tf"),
        (a, _raw(update("A:US", 3, now + 5), seq=-1), "negative_seq"),
        (a, _raw(update("A:US", 3, now + 5), known_at=now), "known_before_ts"),
        (features_subject("B:US"), encode(update("B:US", 0, now)), None),
        (features_subject("C:US"), encode(update("C:US", 0, now)), None),  # evicts A, the coldest
        (features_subject("B:US"), encode(update("B:US", 1, now + 1)), None),
    ]
    extra = ["--max-series", "2", "--max-future-ms", "5000", "--max-seq-jump", "1000"]

    async def scenario():
        nc = await nats.connect(server.url)
        signals, dead = [], []
        await _collect(nc, STREAMING.pattern("signals"), signals)
        await _collect(nc, STREAMING.pattern("deadletter"), dead)
        await nc.flush()
        for subject, payload, _ in sequence:
            await nc.publish(subject, payload)
            await nc.flush()
        await _wait(signals, sum(r is None for *_, r in sequence))
        await _wait(dead, sum(r is not None for *_, r in sequence))
        await nc.close()
        return signals, dead

    with ScorerProcess(
        server.url, model=MODEL_V1, mode="core", max_batch=1, extra=extra, log_path=tmp_path / "s.log"
    ) as s:
        signals, dead = asyncio.run(scenario())
        metrics = __import__("urllib.request").request.urlopen(s.url + "/metrics").read().decode()
        status = health(s.url)
    assert s.returncode == 0
    assert [(json.loads(m.data)["symbol_id"], json.loads(m.data)["seq"]) for m in signals] == [
        ("A:US", 0), ("A:US", 1), ("A:US", 2), ("B:US", 0), ("C:US", 0), ("B:US", 1)
    ]  # fmt: skip
    assert [m.headers["Mps-Reason"] for m in dead] == [r for *_, r in sequence if r is not None]
    assert "mps_scorer_evictions_total 1" in metrics and "mps_scorer_series 2" in metrics
    assert status[0] == 200


def test_champion_pointers_are_bounded_checked_and_persisted(server, scorer_bin, tmp_path):
    fifo = tmp_path / "never_answers.onnx"
    os.mkfifo(fifo)
    meta2 = read_metadata(MODEL_V2)
    good = champion_pointer(MODEL_V2, meta2, 5)
    sha2 = sha256_file(MODEL_V2)
    bad = [
        {**good, "onnx_uri": "contracts/models/tick_tiny/v2/tick_tiny.onnx"},  # relative
        {**good, "onnx_uri": fifo.as_uri()},  # a FIFO: open() would never return
        {**good, "onnx_uri": "/dev/zero"},  # never ends
        {**good, "model_version": "9"},  # the model says 2
        {**good, "model_name": "other"},  # another model's pointer under our key
    ]
    state = tmp_path / "state"
    args = dict(
        mode="core", log_path=tmp_path / "s.log", extra=["--state-dir", str(state), "--model-load-timeout-ms", "20000"]
    )

    async def put(pointers, delete=False):
        nc = await nats.connect(server.url)
        js = nc.jetstream()
        await ensure_streams(js, CORE_STREAMS)
        kv = await models_bucket(js)
        for p in pointers:
            await kv.put(STREAMING.champion_key("tick_tiny"), json.dumps(p).encode())
        if delete:
            await kv.purge(STREAMING.champion_key("tick_tiny"))
        await nc.close()

    asyncio.run(put([champion_pointer(MODEL_V1, read_metadata(MODEL_V1), 1)]))
    with ScorerProcess(server.url, **args) as s:
        asyncio.run(put(bad + [good]))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and health(s.url)[1]["model_version"] != "2":
            time.sleep(0.2)
        version = health(s.url)[1]["model_version"]
        metrics = __import__("urllib.request").request.urlopen(s.url + "/metrics").read().decode()
        time.sleep(1.0)  # the persisted copy is written in the background
        t0 = time.monotonic()
    assert s.returncode == 0 and time.monotonic() - t0 < 10, "SIGTERM ends the scorer promptly"
    assert version == "2", "the bad pointers did not block the good one"
    assert "mps_scorer_model_rejects_total 5" in metrics
    kept = json.loads((state / "champion.tick_tiny.json").read_text())
    assert kept["model_version"] == "2" and kept["sha256"] == sha2
    # KV loses the champion and no --model is given: the persisted one is served at once.
    asyncio.run(put([], delete=True))
    with ScorerProcess(server.url, **args) as s:
        assert health(s.url)[1]["model_version"] == "2"
    assert "serving the persisted champion" in (tmp_path / "s.log").read_text()
