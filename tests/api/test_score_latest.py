"""POST /score latest end to end: FastAPI app -> NATS request-reply -> the real Rust scorer.

The scorer holds the rings of updates it received over NATS; the API's answer must be the Signal
the Python reference scorer gives on the same updates, and each typed refusal of the scorer must
reach the client as its HTTP status. The scorer runs with its JSON-lines trace exporter on: one
OpenTelemetry trace must run from the API's spans through the scorer's (and back in the reply).
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import nats
import pytest
from fastapi.testclient import TestClient

from backtest.reference_scorer import ReferenceScorer
from backtest.signal import NUMERIC_FIELDS
from feature_store.contract import STREAMING
from feature_store.messages import FeaturePublisher, FeatureUpdate
from mps.api.app import create_app
from mps.api.services import Services
from mps.scorer_process import ScorerProcess, scorer_binary
from tests.api.conftest import NOW, make_settings

MODEL = Path(__file__).resolve().parents[2] / "contracts/models/tick_tiny/v1/tick_tiny.onnx"
VALUES = (0.0, 0.0, 0.0, 0.0, 2.0, 0.1, -0.1, 5.0, 20.0, 0.2, 0.25, 5.0e7)
pytestmark = pytest.mark.slow


def _updates(symbol: str, n: int) -> list[FeatureUpdate]:
    import time

    out = []
    for seq in range(n):
        ts = time.time_ns()
        values = list(VALUES)
        values[0] = 1e-4 * (((seq * 7 + len(symbol)) % 11) - 5)
        out.append(FeatureUpdate(symbol, "1s", ts, ts + 1_000_000, "tick_v1", tuple(values), seq))
    return out


@pytest.fixture(scope="module")
def scorer_with_rings(tmp_path_factory):
    """A NATS server and the Rust scorer holding a warm SIM1:SIM ring and a cold SIM2:SIM one."""
    from mps.nats_server import NatsServer

    scorer_binary()  # built once (make test builds it first)
    warm, cold = _updates("SIM1:SIM", 70), _updates("SIM2:SIM", 5)

    async def publish(url):
        nc = await nats.connect(url)
        seen = asyncio.Event()
        got = []

        async def on(msg):
            got.append(msg)
            if len(got) == len(warm) + len(cold):
                seen.set()

        await nc.subscribe(STREAMING.pattern("signals"), cb=on)
        pub = FeaturePublisher(nc)
        for u in warm + cold:
            await pub.publish(u)
        await asyncio.wait_for(seen.wait(), 30)
        await nc.close()

    tmp = tmp_path_factory.mktemp("score-latest")
    spans = tmp / "scorer-spans.jsonl"
    traces = ["--traces", f"jsonl:{spans}"]
    with NatsServer(store_dir=tmp / "nats") as server, pytest.MonkeyPatch.context() as env:
        env.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")  # the SDK's batch delay (ms): spans reach the file at once
        with ScorerProcess(server.url, model=MODEL, mode="core", log_path=tmp / "scorer.log", extra=traces):
            asyncio.run(publish(server.url))
            yield server.url, warm, spans


def test_score_latest_equals_the_reference_scorer_on_the_same_ring(api_lake, token, scorer_with_rings):
    url, warm, _ = scorer_with_rings
    app = create_app(Services(make_settings(nats_url=url), api_lake, clock=lambda: NOW))
    with TestClient(app) as client:
        r = client.post(
            "/score", json={"symbol_id": "SIM1:SIM", "tf": "1s"}, headers=token("read:signals", realtime=True)
        )
    assert r.status_code == 200, r.text
    body = r.json()
    got = body["signal"]
    assert body["mode"] == "latest" and body["delayed"] is False
    reference = ReferenceScorer(MODEL)
    for u in warm[:-1]:
        reference.ingest(u)
    (want,) = reference.score(warm[-1:], now_ns=got["published_at"])
    assert (got["symbol_id"], got["seq"], got["ts"], got["model_version"]) == ("SIM1:SIM", 69, warm[-1].ts, "1")
    for field in NUMERIC_FIELDS:
        assert got[field] == pytest.approx(want[field], abs=1e-6), field
    for g, w in zip(got["distribution"], want["distribution"], strict=True):
        assert (g["horizon"], g["prob_up"], g["q50"]) == (
            w["horizon"],
            pytest.approx(w["prob_up"], abs=1e-6),
            pytest.approx(w["q50"], abs=1e-9),
        )


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"symbol_id": "NOPE:SIM"}, 404, "unknown_symbol"),
        ({"symbol_id": "SIM2:SIM", "tf": "1s"}, 409, "not_enough_history"),
        ({"symbol_id": "SIM1:SIM", "tf": "1m"}, 404, "unknown_symbol"),
        ({"symbol_id": "SIM1:SIM", "model_name": "tick_big"}, 503, "scorer_unavailable"),
    ],
)
def test_score_latest_refusals_keep_their_type(api_lake, token, scorer_with_rings, body, status, code):
    url, _, _ = scorer_with_rings
    app = create_app(Services(make_settings(nats_url=url), api_lake, clock=lambda: NOW))
    with TestClient(app) as client:
        r = client.post("/score", json=body, headers=token("read:signals", realtime=True))
    assert (r.status_code, r.json()["error"]["code"]) == (status, code), r.text
    assert json.loads(r.text)["error"]["message"]


def _scorer_span(path: Path, trace_id: str, name: str, timeout: float = 10.0) -> dict:
    """The scorer's span ``name`` of trace ``trace_id`` in its JSON-lines export (waits for the batch)."""
    deadline = time.monotonic() + timeout
    while True:
        lines = path.read_text().splitlines() if path.exists() else []
        found = [s for s in map(json.loads, lines) if s["trace_id"] == trace_id and s["name"] == name]
        if found or time.monotonic() > deadline:
            assert len(found) == 1, f"{len(found)} {name} spans of trace {trace_id} in {lines[-5:]}"
            return found[0]
        time.sleep(0.05)


@pytest.mark.parametrize(
    ("symbol", "status", "outcome"), [("SIM1:SIM", 200, "signal"), ("SIM2:SIM", 409, "not_enough_history")]
)
def test_one_trace_runs_from_the_api_through_the_scorer_and_back(
    api_lake, token, scorer_with_rings, symbol, status, outcome
):
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    url, _, spans = scorer_with_rings
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = create_app(Services(make_settings(nats_url=url), api_lake, clock=lambda: NOW), tracer_provider=provider)
    with TestClient(app) as client:
        r = client.post("/score", json={"symbol_id": symbol, "tf": "1s"}, headers=token("read:signals", realtime=True))
    assert r.status_code == status, r.text
    api = {s.name: s for s in exporter.get_finished_spans()}
    request = api["nats.request"]
    trace_id, request_id = f"{request.context.trace_id:032x}", f"{request.context.span_id:016x}"
    assert request.context.trace_id == api["POST /score"].context.trace_id

    scorer = _scorer_span(spans, trace_id, "score.request")  # absent if the scorer dropped the context
    assert scorer["parent_span_id"] == request_id and scorer["parent_is_remote"] is True
    attrs = scorer["attributes"]
    assert (attrs["model"], attrs["model_version"], attrs["symbol_id"], attrs["tf"], attrs["outcome"]) == (
        "tick_tiny",
        "1",
        symbol,
        "1s",
        outcome,
    )
    # the reply's headers name the scorer's span: the API records it on its request span
    assert request.attributes["mps.scorer.traceparent"] == f"00-{trace_id}-{scorer['span_id']}-01"


def test_a_traced_feature_update_continues_its_trace_into_the_signal_headers(scorer_with_rings):
    """Streaming path: a FeatureUpdate with a ``traceparent`` gets a ``score.update`` span whose
    context the published Signal carries; an update without one is not traced."""
    from feature_store.messages import encode

    url, _, spans = scorer_with_rings
    trace_id, parent = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
    traced, plain = _updates("SIM3:SIM", 2)  # a series of its own: the other tests' rings stay as they are
    received: list = []

    async def run():
        nc = await nats.connect(url)

        async def on(msg):
            received.append((json.loads(msg.data)["seq"], dict(msg.headers or {})))

        await nc.subscribe(STREAMING.subject("signals", tf="1s", symbol="SIM3:SIM"), cb=on)
        await nc.flush()
        await nc.publish(traced.subject, encode(traced), headers={"traceparent": f"00-{trace_id}-{parent}-01"})
        await nc.publish(plain.subject, encode(plain))
        for _ in range(200):
            if len(received) >= 2:
                break
            await asyncio.sleep(0.05)
        await nc.close()

    asyncio.run(run())
    headers = dict(received)
    assert set(headers) == {traced.seq, plain.seq}, received
    assert "traceparent" not in headers[plain.seq]
    span = _scorer_span(spans, trace_id, "score.update")
    assert span["parent_span_id"] == parent and span["attributes"]["outcome"] == "published"
    assert span["attributes"]["messaging.destination"] == "signals.v1.1s.SIM3:SIM"
    assert headers[traced.seq]["traceparent"] == f"00-{trace_id}-{span['span_id']}-01"
