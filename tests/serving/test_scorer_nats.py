"""The Rust scorer beside a NATS server from the wheel: parity, dead letters, hot swap, restart."""

from __future__ import annotations

import asyncio
import json
import shutil
import time

import jsonschema
import nats
import onnx
import pytest
from scorer_helpers import CONTRACTS, MODEL_V1, MODEL_V2, Collector, http_get, make_update, metric

from backtest.reference_scorer import ReferenceScorer
from backtest.risk_state import RiskSnapshot, publish_risk_state
from backtest.signal import NUMERIC_FIELDS
from feature_store.contract import STREAMING
from feature_store.messages import (
    FeaturePublisher,
    deadletter_subject,
    encode,
    ensure_streams,
    features_subject,
    put_champion,
)
from mps.scorer_process import ScorerProcess
from training.onnx_export import champion_pointer, read_metadata, sha256_file

SIGNAL_SCHEMA = json.loads((CONTRACTS / "signal.schema.json").read_text())
pytestmark = pytest.mark.slow


def test_core_mode_signals_match_python_reference(nats_server, scorer_bin, tmp_path):
    symbols = ["AAPL:US", "MSFT:US", "ESZ13:CME"]
    updates = [make_update(s, seq, bump=1e-5 * i) for seq in range(66) for i, s in enumerate(symbols)]

    async def scenario(scorer):
        nc = await nats.connect(nats_server.url)
        signals = Collector()
        await signals.start(nc, STREAMING.pattern("signals"))
        await nc.flush()
        pub = FeaturePublisher(nc)
        for u in updates:
            await pub.publish(u)
        await nc.flush()
        got = await signals.wait_for(len(updates))
        await nc.close()
        return got

    with ScorerProcess(nats_server.url, model=MODEL_V1, mode="core", log_path=tmp_path / "scorer.log") as scorer:
        got = asyncio.run(scenario(scorer))
        status, health = http_get(scorer.url + "/health")
        _, metrics = http_get(scorer.url + "/metrics")
    assert scorer.returncode == 0, "SIGTERM must end the scorer cleanly"
    assert status == 200 and json.loads(health)["model_version"] == "1"
    assert metric(metrics, "mps_scorer_signals_total") == len(updates)
    assert len(got) == len(updates)

    reference = ReferenceScorer(MODEL_V1)
    published = {(g["symbol_id"], g["seq"]): g["published_at"] for g in got}
    # the scorer judges staleness at publish time: give the reference the same clock
    expected = {(u.symbol_id, u.seq): reference.score([u], published[(u.symbol_id, u.seq)])[0] for u in updates}
    for sig in got:
        jsonschema.validate(sig, SIGNAL_SCHEMA)
        exp = expected[(sig["symbol_id"], sig["seq"])]
        for field in NUMERIC_FIELDS:
            assert sig[field] == pytest.approx(exp[field], abs=1e-6), (sig["symbol_id"], sig["seq"], field)
        assert sig["vol_scale"] == pytest.approx(exp["vol_scale"], abs=1e-6)
        assert (sig["guard"], sig["capped"], sig["model_version"]) == (exp["guard"], exp["capped"], "1")
    warm = [s for s in got if s["seq"] >= 59]
    assert warm and all(s["guard"] is None for s in warm)
    assert all(s["guard"] == "warmup" for s in got if s["seq"] < 59)


def test_bad_messages_go_to_dead_letters_and_scoring_continues(nats_server, scorer_bin, tmp_path):
    good = [make_update("AAPL:US", seq) for seq in range(3)]
    raw = json.loads(encode(make_update("AAPL:US", 10)))
    subject = features_subject("1s", "AAPL:US")
    bad = [
        (subject, b"{not json", "malformed_json"),
        (subject, json.dumps({**raw, "values": [float("nan")] * 12}).encode(), "non_finite"),
        (subject, json.dumps({**raw, "values": raw["values"][:5]}).encode(), "wrong_length"),
        (subject, json.dumps({**raw, "feature_set": "bar_v1"}).encode(), "wrong_feature_set"),
        (subject, encode(good[2]), "duplicate"),
        (subject, encode(make_update("AAPL:US", 1)), "late"),
        (features_subject("1s", "MSFT:US"), encode(make_update("AAPL:US", 11)), "subject_mismatch"),
    ]
    after = make_update("AAPL:US", 3)

    async def scenario():
        nc = await nats.connect(nats_server.url)
        signals, dead = Collector(), Collector()
        await signals.start(nc, STREAMING.pattern("signals"))
        await dead.start(nc, STREAMING.pattern("deadletter"), raw=True)
        await nc.flush()
        pub = FeaturePublisher(nc)
        for u in good:
            await pub.publish(u)
        for subj, payload, _ in bad:
            await pub.publish_raw(subj, payload)
        await pub.publish(after)
        await nc.flush()
        await signals.wait_for(4)
        await dead.wait_for(len(bad))
        await nc.close()
        return signals.items, dead.items

    with ScorerProcess(nats_server.url, model=MODEL_V1, mode="core", log_path=tmp_path / "scorer.log") as scorer:
        sigs, dead = asyncio.run(scenario())
        _, metrics = http_get(scorer.url + "/metrics")
        assert http_get(scorer.url + "/health")[0] == 200
    assert scorer.returncode == 0
    assert [s["seq"] for s in sigs] == [0, 1, 2, 3]
    assert [h["Mps-Reason"] for _, h, _ in dead] == [r for _, _, r in bad]
    assert dead[0][0] == deadletter_subject(subject) and dead[0][2] == b"{not json"
    for _, _, reason in bad:
        assert metric(metrics, f'mps_scorer_deadletters_total{{reason="{reason}"}}') == 1


def _golden_mismatch_model(tmp_path):
    """v2's graph with v1's golden vectors (and their sha) beside it: the golden check must fail."""
    d = tmp_path / "golden_mismatch"
    d.mkdir()
    v1_meta = read_metadata(MODEL_V1)
    shutil.copy(MODEL_V1.with_name(v1_meta.golden_file), d / v1_meta.golden_file)
    proto = onnx.load(str(MODEL_V2))
    for p in proto.metadata_props:
        if p.key == "golden_sha256":
            p.value = v1_meta.golden_sha256
        if p.key == "model_version":
            p.value = "3"
    onnx.save(proto, str(d / "tick_tiny.onnx"))
    return d / "tick_tiny.onnx"


def test_hot_swap_under_load_refuses_bad_models_and_drops_nothing(nats_server, scorer_bin, tmp_path):
    symbols = [f"S{i:03d}:US" for i in range(40)]
    corrupt = tmp_path / "corrupt" / "tick_tiny.onnx"
    corrupt.parent.mkdir()
    corrupt.write_bytes(MODEL_V2.read_bytes()[:5000])
    mismatch = _golden_mismatch_model(tmp_path)
    meta2 = read_metadata(MODEL_V2)
    bad_pointers = [
        {**champion_pointer(MODEL_V2, meta2, 2), "sha256": "0" * 64},  # sha mismatch
        {**champion_pointer(mismatch, meta2, 3), "model_version": "3"},  # golden mismatch
        {
            "model_name": "tick_tiny",
            "model_version": "4",
            "onnx_uri": corrupt.as_uri(),
            "sha256": sha256_file(corrupt),
        },  # corrupt ONNX
    ]
    rounds = 50

    async def setup():
        nc = await nats.connect(nats_server.url)
        js = nc.jetstream()
        await ensure_streams(js)
        await put_champion(js, champion_pointer(MODEL_V1, read_metadata(MODEL_V1), 1))
        await nc.close()

    async def scenario(scorer):
        nc = await nats.connect(nats_server.url)
        js = nc.jetstream()
        signals = Collector()
        await signals.start(nc, STREAMING.pattern("signals"))
        await nc.flush()
        pub = FeaturePublisher(nc)
        r = 0
        # Keep the load on until the new champion has answered (loading takes a while on a busy CI box).
        while r < rounds or (not any(g["model_version"] == "2" for g in signals.items) and r < 3000):
            for s in symbols:
                await pub.publish(make_update(s, r))
            if r == 10:
                for p in bad_pointers:
                    await put_champion(js, p)
            if r == 25:
                await put_champion(js, champion_pointer(MODEL_V2, meta2, 5))
            await asyncio.sleep(0.01)  # ~4k updates/s
            r += 1
        for s in symbols:  # one more round, certainly after the swap
            await pub.publish(make_update(s, r))
        await nc.flush()
        n = (r + 1) * len(symbols)
        got = await signals.wait_for(n, timeout=60)
        await asyncio.sleep(0.3)  # a duplicate would arrive now
        await nc.close()
        return list(got), n

    asyncio.run(setup())
    with ScorerProcess(nats_server.url, mode="jetstream", log_path=tmp_path / "scorer.log") as scorer:
        got, n_updates = asyncio.run(scenario(scorer))
        _, metrics = http_get(scorer.url + "/metrics")
        _, health = http_get(scorer.url + "/health")
    assert scorer.returncode == 0
    keys = [(s["symbol_id"], s["seq"]) for s in got]
    assert len(keys) == len(set(keys)) == n_updates, "every update gets exactly one signal across the swap"
    assert metric(metrics, "mps_scorer_model_rejects_total") == len(bad_pointers)
    assert metric(metrics, "mps_scorer_model_swaps_total") == 1
    assert json.loads(health)["model_version"] == "2"
    for s in symbols:
        versions = [g["model_version"] for g in sorted((g for g in got if g["symbol_id"] == s), key=lambda g: g["seq"])]
        assert versions == sorted(versions) and versions[0] == "1" and versions[-1] == "2", s
    log = (tmp_path / "scorer.log").read_text()
    assert "does not match" in log and "golden vectors differ" in log


def test_jetstream_durable_consumer_resumes_after_restart(nats_server, scorer_bin, tmp_path):
    first = [make_update(s, q) for q in range(20) for s in ("A:US", "B:US")]
    second = [make_update(s, q) for q in range(20, 35) for s in ("A:US", "B:US")]

    async def publish(batch):
        nc = await nats.connect(nats_server.url)
        js = nc.jetstream()
        await ensure_streams(js)
        pub = FeaturePublisher(nc, jetstream=True)
        for u in batch:
            await pub.publish(u)
        await nc.close()

    async def stream_count():
        nc = await nats.connect(nats_server.url)
        info = await nc.jetstream().stream_info(STREAMING.stream_of("signals"))
        await nc.close()
        return info.state.messages

    async def collect(n):
        nc = await nats.connect(nats_server.url)
        sub = await nc.jetstream().subscribe(
            STREAMING.pattern("signals"), stream=STREAMING.stream_of("signals"), ordered_consumer=True
        )
        got = []
        deadline = time.monotonic() + 30
        while len(got) < n and time.monotonic() < deadline:
            try:
                msg = await sub.next_msg(timeout=1)
            except TimeoutError:  # nats' own, or asyncio's (a subclass relation, both covered)
                continue
            got.append(json.loads(msg.data))
        await nc.close()
        return got

    asyncio.run(publish(first))  # published while no scorer runs
    for batch in (first, second):
        with ScorerProcess(nats_server.url, model=MODEL_V1, mode="jetstream", log_path=tmp_path / "s.log") as scorer:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                if metric(http_get(scorer.url + "/metrics")[1], "mps_scorer_signals_total") >= len(batch):
                    break
                time.sleep(0.05)
        assert scorer.returncode == 0
        if batch is first:
            asyncio.run(publish(second))  # published while the scorer is down
    total = len(first) + len(second)
    assert asyncio.run(stream_count()) == total
    got = asyncio.run(collect(total))
    assert sorted((s["symbol_id"], s["seq"]) for s in got) == sorted((u.symbol_id, u.seq) for u in first + second)


def test_published_risk_state_fires_the_kill_switch(nats_server, scorer_bin, tmp_path):
    """backtest.risk_state publishes; the real scorer zeroes sizes while the state says kill, not after."""
    sizing = json.loads((CONTRACTS / "sizing.json").read_text())
    sizing.update(fee_bps=0.0, slippage_bps=0.0, max_staleness_ms=0)  # an edge on every update, never stale
    sizing_path = tmp_path / "sizing.json"
    sizing_path.write_text(json.dumps(sizing))
    lookback = read_metadata(MODEL_V1).lookback
    nav = sizing["nav"]

    async def scenario():
        nc = await nats.connect(nats_server.url)
        signals = Collector()
        await signals.start(nc, STREAMING.pattern("signals"))
        await nc.flush()
        pub = FeaturePublisher(nc)
        seq = 0

        async def one(state=None):
            nonlocal seq
            if state is not None:
                await publish_risk_state(nc, state)
                await asyncio.sleep(0.3)  # applied between batches
            await pub.publish(make_update("AAPL:US", seq, bump=2e-4))
            seq += 1
            return (await signals.wait_for(seq))[-1]

        for _ in range(lookback):
            warm = await one()
        now = time.time_ns()
        crossed = await one(RiskSnapshot.from_equity(now, 0.95 * nav, nav))  # 5% > max_intraday_drawdown
        await nc.publish(STREAMING.subject("risk_state"), b"{not json")  # ignored, not fatal
        killed = await one(RiskSnapshot(ts=now, nav=nav, intraday_drawdown=0.0, kill=True))
        back = await one(RiskSnapshot(ts=now, nav=nav, intraday_drawdown=0.001, kill=False))
        await nc.close()
        return warm, crossed, killed, back

    with ScorerProcess(
        nats_server.url, model=MODEL_V1, mode="core", sizing=sizing_path, log_path=tmp_path / "s.log"
    ) as s:
        warm, crossed, killed, back = asyncio.run(scenario())
        _, metrics = http_get(s.url + "/metrics")
    assert s.returncode == 0
    assert warm["guard"] is None and warm["size"] != 0.0, "the test needs a sized position before the kill"
    assert (crossed["guard"], crossed["size"], crossed["notional"]) == ("drawdown_kill", 0.0, 0.0)
    assert crossed["kelly"] != 0.0, "Kelly still reported; only the size is cut"
    assert (killed["guard"], killed["size"]) == ("drawdown_kill", 0.0)
    assert back["guard"] is None and back["size"] != 0.0
    assert metric(metrics, "mps_scorer_risk_states_total") == 3
