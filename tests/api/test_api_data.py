"""Data endpoints: bars and freshness from the lake, entitlements (delayed data), OpenAPI, metrics."""

from __future__ import annotations

from datetime import timedelta

from tests.api.conftest import NOW


def test_health_needs_no_token_and_openapi_lists_every_route(client):
    assert client.get("/health").json()["status"] == "ok"
    paths = set(client.get("/openapi.json").json()["paths"])
    assert {"/health", "/bars", "/features", "/score", "/backtest", "/governance/promote"} <= paths
    assert {"/telemetry/freshness", "/signals/stream", "/webhooks/{name}"} <= paths


def test_realtime_client_sees_every_bar(client, token):
    r = client.get("/bars", params={"symbol_id": "SIM1:SIM", "tf": "1m"}, headers=token("read:bars", realtime=True))
    body = r.json()
    assert r.status_code == 200 and body["delayed"] is False and body["count"] == 60
    assert body["rows"][-1]["close"] == 100.5 + 59
    assert body["rows"][0]["quality"]["n_src"] == 3


def test_delayed_client_sees_bars_at_least_the_delay_old(client, token):
    body = client.get("/bars", params={"symbol_id": "SIM1:SIM"}, headers=token("read:bars")).json()
    assert body["delayed"] is True
    assert body["count"] == 60 - 15  # the last 15 one-minute bars are younger than 15 minutes
    cutoff = NOW - timedelta(minutes=15)
    assert body["rows"][-1]["ts"].startswith(cutoff.strftime("%Y-%m-%dT%H:%M"))


def test_bars_limit_and_unknown_symbol(client, token):
    h = token("read:bars", realtime=True)
    assert client.get("/bars", params={"symbol_id": "SIM1:SIM", "limit": 5}, headers=h).json()["count"] == 5
    assert client.get("/bars", params={"symbol_id": "NOPE:X"}, headers=h).json()["count"] == 0


def test_freshness_returns_the_latest_record_per_series(client, token):
    body = client.get("/telemetry/freshness", headers=token("read:bars")).json()
    got = {(r["symbol_id"], r["source"]): (r["age_ms"], r["stale"]) for r in body["rows"]}
    assert got == {("SIM1:SIM", "sim_a"): (2000.0, False), ("SIM2:SIM", "sim_b"): (3_600_000.0, True)}


def test_unknown_feature_table_is_a_typed_404(client, token):
    r = client.get("/features", params={"symbol_id": "SIM1:SIM", "table": "nope"}, headers=token("read:bars"))
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_feature_table"


def test_metrics_expose_freshness_and_request_counts(client, token):
    client.get("/bars", params={"symbol_id": "SIM1:SIM"}, headers=token("read:bars"))
    text = client.get("/metrics").text
    assert 'data_freshness_ms{source="sim_b",symbol_id="SIM2:SIM"} 3.6e+06' in text
    assert "stale_rate 0.5" in text
    assert 'mps_api_requests_total{route="/bars",status="200"}' in text
