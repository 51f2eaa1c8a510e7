"""The Rust scorer answers score requests and scores a challenger in shadow (real binary, real NATS).

Score requests: subject ``score_request`` of the model (contracts/streaming.json); the reply is the
Signal of the series' current ring (equal to the Python reference scorer fed the same updates) or a
typed refusal (contracts/score_error.schema.json). Shadow: with a challenger pointer at the
contract's challenger key, the challenger's Signals go to ``signals_shadow`` only; deleting the key
stops them while the champion's Signals go on.
"""

from __future__ import annotations

import asyncio
import json
import time

import jsonschema
import nats
import pytest
from scorer_helpers import CONTRACTS, MODEL_V1, MODEL_V2, Collector, http_get, make_update, metric

from backtest.reference_scorer import ReferenceScorer
from backtest.signal import NUMERIC_FIELDS
from feature_store.contract import STREAMING
from feature_store.messages import (
    FeaturePublisher,
    clear_challenger,
    ensure_streams,
    put_challenger,
    put_champion,
)
from mps.scorer_process import ScorerProcess
from training.onnx_export import champion_pointer, read_metadata

SIGNAL_SCHEMA = json.loads((CONTRACTS / "signal.schema.json").read_text())
ERROR_SCHEMA = json.loads((CONTRACTS / "score_error.schema.json").read_text())
pytestmark = pytest.mark.slow


def _assert_same_signal(got: dict, want: dict) -> None:
    for field in NUMERIC_FIELDS:
        assert got[field] == pytest.approx(want[field], abs=1e-6), field
    assert [d["prob_up"] for d in got["distribution"]] == pytest.approx(
        [d["prob_up"] for d in want["distribution"]], abs=1e-6
    )
    assert (got["guard"], got["capped"], got["seq"], got["ts"]) == (
        want["guard"],
        want["capped"],
        want["seq"],
        want["ts"],
    )


def test_score_requests_answer_the_current_ring_or_a_typed_refusal(nats_server, scorer_bin, tmp_path):
    warm = [make_update("AAPL:US", seq, bump=1e-5 * seq) for seq in range(70)]
    cold = [make_update("MSFT:US", seq) for seq in range(3)]
    subject = STREAMING.subject("score_request", model_name="tick_tiny")

    async def scenario():
        nc = await nats.connect(nats_server.url)
        signals = Collector()
        await signals.start(nc, STREAMING.pattern("signals"))
        await nc.flush()
        pub = FeaturePublisher(nc)
        for u in warm + cold:
            await pub.publish(u)
        await nc.flush()
        await signals.wait_for(len(warm) + len(cold))  # every update is in its ring

        async def ask(**body):
            msg = await nc.request(subject, json.dumps(body).encode(), timeout=5)
            return json.loads(msg.data)

        replies = {
            "latest": await ask(symbol_id="AAPL:US", tf="1s", model_name="tick_tiny"),
            "default_tf": await ask(symbol_id="AAPL:US"),
            "unknown": await ask(symbol_id="NOPE:US", tf="1s"),
            "wrong_tf": await ask(symbol_id="AAPL:US", tf="1m"),
            "cold": await ask(symbol_id="MSFT:US", tf="1s"),
            "other_model": await ask(symbol_id="AAPL:US", model_name="tick_big"),
            "bad": await ask(symbol="AAPL:US"),
        }
        await nc.close()
        return replies

    with ScorerProcess(nats_server.url, model=MODEL_V1, mode="core", log_path=tmp_path / "scorer.log") as scorer:
        replies = asyncio.run(scenario())
        _, metrics = http_get(scorer.url + "/metrics")
    assert scorer.returncode == 0

    latest = replies["latest"]
    jsonschema.validate(latest, SIGNAL_SCHEMA)
    reference = ReferenceScorer(MODEL_V1)
    for u in warm[:-1]:
        reference.ingest(u)
    (want,) = reference.score(warm[-1:], now_ns=latest["published_at"])
    _assert_same_signal(latest, want)
    assert latest["model_version"] == "1" and latest["guard"] != "warmup"
    assert replies["default_tf"]["seq"] == warm[-1].seq

    codes = {name: r.get("code") for name, r in replies.items() if "error" in r}
    assert codes == {
        "unknown": "unknown_symbol",
        "wrong_tf": "unknown_symbol",
        "cold": "not_enough_history",
        "other_model": "no_model",
        "bad": "bad_request",
    }
    for name in codes:
        jsonschema.validate(replies[name], ERROR_SCHEMA)
    assert (replies["cold"]["have"], replies["cold"]["need"]) == (3, read_metadata(MODEL_V1).lookback)
    assert metric(metrics, "mps_scorer_score_requests_total") == len(replies)
    assert metric(metrics, "mps_scorer_score_refusals_total") == len(codes)


def _wait_health(scorer, key: str, value, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        health = json.loads(http_get(scorer.url + "/health")[1])
        if health.get(key) == value or time.monotonic() > deadline:
            return health
        time.sleep(0.05)


def test_challenger_is_scored_in_shadow_until_its_pointer_is_removed(nats_server, scorer_bin, tmp_path):
    symbols = ["A:US", "B:US", "C:US"]
    meta1, meta2 = read_metadata(MODEL_V1), read_metadata(MODEL_V2)
    sent: dict[str, list] = {}

    def updates(name: str, seqs: range) -> list:
        """Stamped now (a stale update would be guarded to size 0) and kept for the reference."""
        sent[name] = [make_update(s, q, bump=1e-5 * i) for q in seqs for i, s in enumerate(symbols)]
        return sent[name]

    async def setup():
        nc = await nats.connect(nats_server.url)
        js = nc.jetstream()
        await ensure_streams(js)
        await put_champion(js, champion_pointer(MODEL_V1, meta1, 1))
        await nc.close()

    async def publish(nc, updates, live: Collector, shadow: Collector, n_live: int, n_shadow: int):
        pub = FeaturePublisher(nc, jetstream=True)
        for u in updates:
            await pub.publish(u)
        await live.wait_for(n_live)
        await shadow.wait_for(n_shadow)

    async def scenario(scorer):
        nc = await nats.connect(nats_server.url)
        js = nc.jetstream()
        live, shadow = Collector(), Collector()
        await live.start(nc, STREAMING.pattern("signals"))
        await shadow.start(nc, STREAMING.pattern("signals_shadow"))
        await nc.flush()
        await publish(nc, updates("history", range(64)), live, shadow, 64 * 3, 0)
        await put_challenger(js, champion_pointer(MODEL_V2, meta2, 2))
        health = await asyncio.to_thread(_wait_health, scorer, "challenger_version", "2")
        assert health["challenger_version"] == "2", health
        await publish(nc, updates("shadowed", range(64, 74)), live, shadow, 74 * 3, 10 * 3)
        await clear_challenger(js, "tick_tiny")
        health = await asyncio.to_thread(_wait_health, scorer, "challenger_version", None)
        assert health["challenger_version"] is None, health
        await publish(nc, updates("after", range(74, 80)), live, shadow, 80 * 3, 10 * 3)
        await asyncio.sleep(0.5)  # a late shadow signal would arrive now
        streams = {}
        for name in ("signals", "signals_shadow"):
            info = await js.stream_info(STREAMING.stream_of(name))
            streams[name] = info.state.messages
        await nc.close()
        return list(live.items), list(shadow.items), streams

    asyncio.run(setup())
    with ScorerProcess(nats_server.url, mode="jetstream", log_path=tmp_path / "scorer.log") as scorer:
        live, shadow, streams = asyncio.run(scenario(scorer))
        _, metrics = http_get(scorer.url + "/metrics")
    assert scorer.returncode == 0
    history, shadowed, after = sent["history"], sent["shadowed"], sent["after"]

    # live: one champion signal per update, never the challenger's
    assert sorted((s["symbol_id"], s["seq"]) for s in live) == sorted(
        (u.symbol_id, u.seq) for u in history + shadowed + after
    )
    assert {s["model_version"] for s in live} == {"1"}
    # shadow: one challenger signal per update while the pointer was set, none before or after
    assert sorted((s["symbol_id"], s["seq"]) for s in shadow) == sorted((u.symbol_id, u.seq) for u in shadowed)
    assert {s["model_version"] for s in shadow} == {"2"}
    assert streams == {"signals": len(live), "signals_shadow": len(shadow)}
    assert metric(metrics, "mps_scorer_shadow_signals_total") == len(shadowed)

    # sized like a live signal, and equal to the challenger fed every update from the start (warm at once)
    reference = ReferenceScorer(MODEL_V2)
    for u in history:
        reference.ingest(u)
    for sig in sorted(shadow, key=lambda s: s["seq"]):
        jsonschema.validate(sig, SIGNAL_SCHEMA)
        update = next(u for u in shadowed if (u.symbol_id, u.seq) == (sig["symbol_id"], sig["seq"]))
        (want,) = reference.score([update], now_ns=sig["published_at"])
        _assert_same_signal(sig, want)
        assert sig["guard"] != "warmup", "the challenger starts on the champion's warm rings"
