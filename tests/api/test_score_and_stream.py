"""POST /score (asof from gold with the champion ONNX; latest via NATS), SSE signals, OTel spans."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from fastapi.testclient import TestClient

from feature_store.contract import STREAMING
from mps.api.app import create_app
from mps.api.services import Services
from tests.api.conftest import NOW, make_settings

MODEL = Path(__file__).resolve().parents[2] / "contracts/models/tick_tiny/v1/tick_tiny.onnx"


@pytest.fixture
def gold_lake(api_lake):
    from feature_store.tick_features import FEATURE_NAMES, FEATURE_SET, write_features

    n, rng = 120, np.random.default_rng(3)
    ts = [NOW - timedelta(minutes=30) - timedelta(seconds=n - 1 - i) for i in range(n)]
    df = pl.DataFrame(
        {
            "symbol_id": ["SIM1:SIM"] * n,
            "tf": ["1s"] * n,
            "ts": ts,
            "known_at": ts,
            "feature_set": [FEATURE_SET] * n,
            **{name: rng.normal(0, 1, n) for name in FEATURE_NAMES},
        }
    ).with_columns(pl.col("ts", "known_at").dt.cast_time_unit("ns"))
    write_features(api_lake, df)
    return api_lake, df


def _reference(df: pl.DataFrame, asof_ns: int) -> dict:
    """The signal of the reference scorer fed the same rows (independent of the API's code path)."""
    from backtest.reference_scorer import ReferenceScorer
    from feature_store.tick_features import feature_updates

    updates = [u for u in feature_updates(df) if u.known_at <= asof_ns]
    scorer = ReferenceScorer(MODEL)
    for u in updates[:-1]:
        scorer.ingest(u)
    return scorer.score(updates[-1:], now_ns=asof_ns)[0]


def test_score_asof_equals_the_reference_scorer_on_the_same_rows(gold_lake, token):
    lake, df = gold_lake
    app = create_app(Services(make_settings(model_path=str(MODEL)), lake, clock=lambda: NOW))
    asof = NOW - timedelta(minutes=30, seconds=20)
    with TestClient(app) as client:
        r = client.post(
            "/score",
            json={"symbol_id": "SIM1:SIM", "mode": "asof", "asof": asof.isoformat()},
            headers=token("read:signals", realtime=True),
        )
    assert r.status_code == 200, r.text
    got, want = r.json()["signal"], _reference(df, int(asof.timestamp() * 1e9))
    assert got["ts"] == want["ts"] and got["ts"] <= int(asof.timestamp() * 1e9)
    assert got["prob_up"] == pytest.approx(want["prob_up"], abs=1e-12)
    assert got["expected_return"] == pytest.approx(want["expected_return"], abs=1e-12)


def test_delayed_client_is_scored_as_of_now_minus_the_delay(gold_lake, token):
    lake, _ = gold_lake
    app = create_app(Services(make_settings(model_path=str(MODEL), delay_s=1800 + 60), lake, clock=lambda: NOW))
    with TestClient(app) as client:
        r = client.post("/score", json={"symbol_id": "SIM1:SIM"}, headers=token("read:signals"))
    body = r.json()
    assert r.status_code == 200 and body["mode"] == "asof" and body["delayed"] is True
    assert body["signal"]["ts"] <= int((NOW - timedelta(seconds=1860)).timestamp() * 1e9)


def test_score_unknown_symbol_is_404(gold_lake, token):
    lake, _ = gold_lake
    app = create_app(Services(make_settings(model_path=str(MODEL)), lake, clock=lambda: NOW))
    with TestClient(app) as client:
        r = client.post(
            "/score",
            json={"symbol_id": "NOPE:X", "mode": "asof", "asof": NOW.isoformat()},
            headers=token("read:signals", realtime=True),
        )
    assert r.status_code == 404 and r.json()["error"]["code"] == "no_data"


@pytest.fixture
def nats_url():
    from mps.nats_server import NatsServer

    with NatsServer() as server:
        yield server.url


def test_score_latest_without_a_scorer_is_503_and_traced(api_lake, token, nats_url):
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = create_app(Services(make_settings(nats_url=nats_url), api_lake, clock=lambda: NOW), tracer_provider=provider)
    with TestClient(app) as client:
        r = client.post("/score", json={"symbol_id": "SIM1:SIM"}, headers=token("read:signals", realtime=True))
    assert r.status_code == 503 and r.json()["error"]["code"] == "scorer_unavailable"
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert set(spans) == {"POST /score", "nats.request"}
    assert spans["nats.request"].parent.span_id == spans["POST /score"].context.span_id
    assert spans["nats.request"].attributes["messaging.destination"] == "score.v1.request.tick_tiny"


def test_score_latest_answered_over_nats_request_reply(api_lake, token, nats_url):
    """A responder on the contract's subject (what the Rust scorer serves) answers the API."""
    import asyncio
    import threading

    import nats

    ready, stop, seen = threading.Event(), threading.Event(), []

    def responder():
        async def run():
            nc = await nats.connect(nats_url)

            async def on(msg):
                req = json.loads(msg.data)
                seen.append((req, dict(msg.headers or {})))
                await msg.respond(json.dumps({"symbol_id": req["symbol_id"], "prob_up": 0.6}).encode())

            await nc.subscribe(STREAMING.subject("score_request", model_name="tick_tiny"), cb=on)
            await nc.flush()
            ready.set()
            while not stop.is_set():
                await asyncio.sleep(0.05)
            await nc.drain()

        asyncio.run(run())

    t = threading.Thread(target=responder, daemon=True)
    t.start()
    assert ready.wait(10)
    app = create_app(Services(make_settings(nats_url=nats_url), api_lake, clock=lambda: NOW))
    try:
        with TestClient(app) as client:
            r = client.post(
                "/score", json={"symbol_id": "SIM1:SIM", "tf": "1s"}, headers=token("read:signals", realtime=True)
            )
    finally:
        stop.set()
        t.join(5)
    assert r.status_code == 200, r.text
    assert r.json()["signal"] == {"symbol_id": "SIM1:SIM", "prob_up": 0.6} and r.json()["mode"] == "latest"
    assert seen[0][0] == {"symbol_id": "SIM1:SIM", "tf": "1s", "model_name": "tick_tiny"}


def test_signals_stream_relays_published_signals_as_sse(api_lake, token, nats_url):
    import asyncio
    import threading

    import nats

    app = create_app(Services(make_settings(nats_url=nats_url), api_lake, clock=lambda: NOW))
    sig = {
        "symbol_id": "SIM1:SIM",
        "tf": "1s",
        "ts": int((NOW - timedelta(hours=1)).timestamp() * 1e9),
        "prob_up": 0.55,
    }

    done = threading.Event()

    def publish_soon():
        async def run():
            nc = await nats.connect(nats_url)
            for _ in range(40):  # until the stream's subscription is live
                if done.is_set():
                    break
                await nc.publish("signals.v1.1s.SIM1:SIM", json.dumps(sig).encode())
                await nc.flush()
                await asyncio.sleep(0.1)
            await nc.close()

        asyncio.run(run())

    with TestClient(app) as client:
        publisher = threading.Thread(target=publish_soon, daemon=True)
        publisher.start()
        with client.stream(
            "GET",
            "/signals/stream",
            params={"symbol_id": "SIM1:SIM", "tf": "1s", "max_events": 2},
            headers=token("read:signals"),
        ) as r:
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
            text = "".join(r.iter_text())
        done.set()
        publisher.join(10)
    events = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]
    assert len(events) == 2 and events[0] == sig  # an hour old: past the delay, so delayed clients get it too
