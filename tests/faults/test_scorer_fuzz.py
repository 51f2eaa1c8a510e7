"""Fuzz the real scorer with random FeatureUpdates and champion pointers: it never stops serving.

After every example a fresh, valid update must still get its Signal and /health must stay 200.
"""

from __future__ import annotations

import asyncio
import json
import time

import nats
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from streaming_harness import MODEL_V1, features_subject, health, update

from feature_store.contract import STREAMING
from feature_store.messages import CORE_STREAMS, encode, ensure_streams, models_bucket
from mps.nats_server import NatsServer
from mps.scorer_process import ScorerProcess, scorer_binary

TOKEN = st.text("ABCXYZ019:_-", min_size=1, max_size=8)
INTS = st.one_of(st.integers(-(2**63), 2**63 - 1), st.integers(-5, 5), st.just(time.time_ns()))
FLOATS = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.floats(-10, 10))
UPDATE = st.fixed_dictionaries(
    {
        "symbol_id": st.one_of(TOKEN, st.text(max_size=5)),
        "tf": st.sampled_from(["1s", "1m", "", "1s.x"]),
        "ts": INTS,
        "known_at": INTS,
        "feature_set": st.sampled_from(["tick_v1", "bar_v1", ""]),
        "values": st.lists(FLOATS, min_size=0, max_size=14),
        "seq": INTS,
    },
    optional={"extra": st.integers()},
)
PAYLOAD = st.one_of(
    UPDATE.map(lambda d: json.dumps(d).encode()),
    st.binary(max_size=64),
    st.recursive(
        st.none() | st.integers() | st.text(max_size=5), lambda c: st.lists(c) | st.dictionaries(st.text(max_size=4), c)
    ).map(lambda v: json.dumps(v).encode()),
)
POINTER = st.one_of(
    st.binary(max_size=40),
    st.fixed_dictionaries(
        {
            "model_name": st.sampled_from(["tick_tiny", "other", ""]),
            "model_version": st.sampled_from(["1", "2", "x"]),
            "onnx_uri": st.sampled_from(
                ["/dev/zero", "relative.onnx", "file:///nonexistent.onnx", "s3://b/k", "/", "file:///%zz"]
            ),
            "sha256": st.sampled_from(["0" * 64, "zz"]),
        }
    ).map(lambda d: json.dumps(d).encode()),
)


@pytest.fixture(scope="module")
def serving(tmp_path_factory):
    scorer_binary()
    tmp = tmp_path_factory.mktemp("fuzz")
    with NatsServer(store_dir=tmp / "nats") as server:
        with ScorerProcess(server.url, model=MODEL_V1, mode="core", log_path=tmp / "scorer.log") as scorer:
            yield server, scorer
        assert scorer.returncode == 0, "SIGTERM still ends the fuzzed scorer cleanly"


COUNTER = iter(range(10**9))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.lists(st.tuples(TOKEN, PAYLOAD), min_size=1, max_size=8), pointer=st.none() | POINTER)
def test_scorer_keeps_serving_whatever_arrives(serving, batch, pointer):
    server, scorer = serving
    live = f"LIVE{next(COUNTER)}:US"

    async def scenario():
        nc = await nats.connect(server.url)
        got = []

        async def cb(msg):
            got.append(json.loads(msg.data))

        await nc.subscribe(STREAMING.subject("signals", tf="1s", symbol=live), cb=cb)
        await nc.flush()
        for symbol, payload in batch:
            await nc.publish(features_subject(symbol), payload)
        if pointer is not None:
            js = nc.jetstream()
            await ensure_streams(js, CORE_STREAMS)
            kv = await models_bucket(js)
            await kv.put(STREAMING.champion_key("tick_tiny"), pointer)
        await nc.publish(features_subject(live), encode(update(live, 0)))
        await nc.flush()
        deadline = time.monotonic() + 20
        while not got and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        await nc.close()
        return got

    got = asyncio.run(scenario())
    assert scorer.proc is not None and scorer.proc.poll() is None, "the scorer died"
    assert got and got[0]["symbol_id"] == live, "a valid update after the fuzz got no signal"
    assert health(scorer.url)[0] == 200
