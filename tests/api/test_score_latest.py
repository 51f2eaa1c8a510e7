"""POST /score latest end to end: FastAPI app -> NATS request-reply -> the real Rust scorer.

The scorer holds the rings of updates it received over NATS; the API's answer must be the Signal
the Python reference scorer gives on the same updates, and each typed refusal of the scorer must
reach the client as its HTTP status.
"""

from __future__ import annotations

import asyncio
import json
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
    with NatsServer(store_dir=tmp / "nats") as server:
        with ScorerProcess(server.url, model=MODEL, mode="core", log_path=tmp / "scorer.log"):
            asyncio.run(publish(server.url))
            yield server.url, warm


def test_score_latest_equals_the_reference_scorer_on_the_same_ring(api_lake, token, scorer_with_rings):
    url, warm = scorer_with_rings
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
    url, _ = scorer_with_rings
    app = create_app(Services(make_settings(nats_url=url), api_lake, clock=lambda: NOW))
    with TestClient(app) as client:
        r = client.post("/score", json=body, headers=token("read:signals", realtime=True))
    assert (r.status_code, r.json()["error"]["code"]) == (status, code), r.text
    assert json.loads(r.text)["error"]["message"]
