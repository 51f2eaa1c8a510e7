"""Security: tokens (missing, wrong scope, expired, tampered, unknown key, rotation), rate limits,
oversized bodies, webhook signatures (stale, bad, replayed), and secrets kept out of the logs."""

from __future__ import annotations

import base64
import json
import logging
import time

import jwt
import pytest
from fastapi.testclient import TestClient

from lakehouse.webhooks import signed_headers
from mps.api.auth import issue_token
from tests.api.conftest import KEYS, WEBHOOK_SECRET, make_settings

BARS = ("/bars", {"symbol_id": "SIM1:SIM"})


def _get(client, headers=None):
    return client.get(BARS[0], params=BARS[1], headers=headers or {})


def test_no_token_is_401_with_the_error_model(client):
    r = _get(client)
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
    assert r.json() == {"error": {"status": 401, "code": "unauthorized", "message": "missing bearer token"}}


def test_wrong_scope_is_403(client, token):
    r = _get(client, token("read:signals"))
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    assert "insufficient_scope" in r.headers["www-authenticate"]


def test_admin_implies_every_scope(client, token):
    assert _get(client, token("admin")).status_code == 200


def test_expired_token_is_401(client, settings):
    old = issue_token(settings, "c", ["read:bars"], ttl_s=60, now=time.time() - 3600)
    r = _get(client, {"Authorization": f"Bearer {old}"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "token_expired"


def test_a_verified_token_is_answered_from_the_cache_until_it_expires(client, app, settings, monkeypatch):
    t = time.time()
    short = issue_token(settings, "c", ["read:bars"], ttl_s=1, now=t - 3)  # valid until t + 3 (5 s leeway)
    headers = {"Authorization": f"Bearer {short}"}
    assert _get(client, headers).status_code == 200 and len(app.state.token_cache) == 1

    def no_decode(*a, **kw):
        raise AssertionError("a cached token was verified again")

    with monkeypatch.context() as m:
        m.setattr(jwt, "decode", no_decode)
        assert _get(client, headers).status_code == 200
    time.sleep(max(0.0, t + 3.2 - time.time()))
    r = _get(client, headers)
    assert r.status_code == 401 and r.json()["error"]["code"] == "token_expired"
    assert len(app.state.token_cache) == 0
    forged = _tamper(issue_token(settings, "c", ["read:signals"]))
    assert _get(client, {"Authorization": f"Bearer {forged}"}).status_code == 401
    assert len(app.state.token_cache) == 0  # only tokens that verified are kept


def test_token_cache_is_bounded_least_recently_used_out():
    from mps.api.auth import Client, TokenCache

    now = [1000.0]
    cache = TokenCache(max_entries=2, clock=lambda: now[0])
    clients = {t: Client(t, frozenset({"read:bars"}), False) for t in ("a", "b", "c")}
    cache.put("a", clients["a"], exp=2000)
    cache.put("b", clients["b"], exp=2000)
    assert cache.get("a") == clients["a"]  # a is now the most recent
    cache.put("c", clients["c"], exp=2000)
    assert len(cache) == 2 and cache.get("b") is None and cache.get("a") == clients["a"]
    now[0] = 2004.9  # exp + 5 s leeway not yet reached
    assert cache.get("c") == clients["c"]
    now[0] = 2005.0
    assert cache.get("c") is None and len(cache) == 1


def _tamper(token: str) -> str:
    head, payload, sig = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["scope"] = "admin"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{head}.{forged}.{sig}"


@pytest.mark.parametrize(
    "make",
    [
        lambda s: _tamper(issue_token(s, "c", ["read:signals"])),
        lambda s: jwt.encode(
            {"sub": "c", "scope": "read:bars", "exp": time.time() + 60, "iss": "mps"},
            "x" * 40,
            algorithm="HS256",
            headers={"kid": "k2026a"},
        ),
        lambda s: jwt.encode(
            {"sub": "c", "scope": "read:bars", "exp": time.time() + 60, "iss": "mps"},
            "x" * 40,
            algorithm="HS256",
            headers={"kid": "retired"},
        ),
        lambda s: jwt.encode(
            {"sub": "c", "scope": "read:bars", "exp": time.time() + 60, "iss": "mps"},
            None,
            algorithm="none",
            headers={"kid": "k2026a"},
        ),
        lambda s: "not-a-jwt",
    ],
    ids=["tampered-claims", "wrong-secret", "unknown-kid", "alg-none", "garbage"],
)
def test_forged_tokens_are_401(client, settings, make):
    r = _get(client, {"Authorization": f"Bearer {make(settings)}"})
    assert r.status_code == 401, r.text


def test_rotation_both_active_keys_verify_and_a_dropped_key_does_not(client, api_lake):
    from fastapi.testclient import TestClient

    from mps.api.app import create_app
    from mps.api.services import Services

    settings = make_settings()
    old = issue_token(settings, "c", ["read:bars"], kid="k2026a")
    new = issue_token(settings, "c", ["read:bars"])
    assert jwt.get_unverified_header(new)["kid"] == "k2026b"
    for t in (old, new):
        assert _get(client, {"Authorization": f"Bearer {t}"}).status_code == 200
    rotated = create_app(Services(make_settings(keys={"k2026b": KEYS["k2026b"]}), api_lake))
    with TestClient(rotated) as c2:
        assert _get(c2, {"Authorization": f"Bearer {old}"}).status_code == 401
        assert _get(c2, {"Authorization": f"Bearer {new}"}).status_code == 200


def test_rate_limit_per_client_is_429_with_retry_after(client, app, token):
    from mps.api.limits import TokenBuckets

    app.state.limiter = TokenBuckets(10, 50, clock=lambda: 1000.0)  # time stands still: no refill
    a, b = token("read:bars", sub="greedy"), token("read:bars", sub="polite")
    codes = [_get(client, a).status_code for _ in range(60)]  # burst 50 at 10/s
    assert codes.count(429) == 10 and codes[:50] == [200] * 50
    r = _get(client, a)
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    assert _get(client, b).status_code == 200  # another client keeps its own bucket


def test_rate_limit_is_configured_per_deployment_from_the_environment(api_lake, token):
    from core.errors import ConfigError
    from core.profile import load_profile
    from mps.api.app import create_app
    from mps.api.services import Services
    from mps.api.settings import settings_from_env

    prof = load_profile("local")
    env = {"MPS_API_KEYS": ",".join(f"{k}:{v}" for k, v in KEYS.items())}
    default = settings_from_env(prof, env)
    assert (default.rate_per_s, default.burst) == (200.0, 400)
    tight = settings_from_env(prof, {**env, "MPS_API_RATE_PER_S": "0.5", "MPS_API_BURST": "3"})
    assert (tight.rate_per_s, tight.burst) == (0.5, 3)
    with TestClient(create_app(Services(tight, api_lake))) as c:
        codes = [_get(c, token("read:bars")).status_code for _ in range(4)]  # refilling one token takes 2 s
        assert codes == [200, 200, 200, 429]
        assert "0.5/s" in _get(c, token("read:bars")).json()["error"]["message"]
    for name, raw in [
        ("MPS_API_RATE_PER_S", "fast"),
        ("MPS_API_RATE_PER_S", "0"),
        ("MPS_API_RATE_PER_S", "nan"),
        ("MPS_API_BURST", "2.5"),
        ("MPS_API_BURST", "-1"),
    ]:
        with pytest.raises(ConfigError, match=name):
            settings_from_env(prof, {**env, name: raw})


def test_oversized_body_is_413(client, token):
    big = b'{"symbol_id": "' + b"x" * (1 << 20) + b'"}'
    r = client.post("/score", content=big, headers={**token("read:signals"), "Content-Type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"


def test_invalid_body_is_422_with_the_error_model(client, token):
    r = client.post("/score", json={"symbol_id": "A", "bogus": 1}, headers=token("read:signals", realtime=True))
    assert r.status_code == 422 and "bogus" in r.json()["error"]["message"]


def _hook(client, body: bytes, ts: int, secret: str = WEBHOOK_SECRET, name: str = "vendor-file"):
    headers = signed_headers(secret, body, ts, "vendor_file", "d1")
    return client.post(f"/webhooks/{name}", content=body, headers=headers)


def test_webhook_signature_checks(client):
    body, now = b'{"key": "landing/x.csv"}', int(time.time())
    assert _hook(client, body, now, secret="wrong" * 8).json()["error"]["code"] == "bad_signature"
    assert _hook(client, body, now - 3600).json()["error"]["code"] == "stale_webhook"
    assert _hook(client, body, now, name="other").status_code == 404
    unsigned = client.post("/webhooks/vendor-file", content=body)
    assert unsigned.status_code == 401 and unsigned.json()["error"]["code"] == "unsigned_webhook"
    # valid signature, but no Prefect server configured: 503 after verification, then a replay is 409
    first = _hook(client, body, now)
    assert first.status_code == 503, first.text
    again = _hook(client, body, now)
    assert again.status_code == 409 and again.json()["error"]["code"] == "replayed_webhook"


def test_secrets_never_reach_the_logs(client, token, settings, caplog):
    caplog.set_level(logging.DEBUG)
    from mps.api.observability import JsonFormatter

    h = token("read:signals")
    _get(client, h)
    _get(client, {"Authorization": "Bearer " + "e30." * 3})
    _hook(client, b"{}", int(time.time()), secret="nope" * 10)
    text = "\n".join(JsonFormatter().format(r) for r in caplog.records) + repr(settings)
    secrets = [*KEYS.values(), WEBHOOK_SECRET, h["Authorization"].split()[1]]
    assert caplog.records and not [s for s in secrets if s in text]
