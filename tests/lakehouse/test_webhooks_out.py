"""Outbound webhooks against a real local HTTP server: signed, retried, dead-lettered into the lake."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from core.errors import ConfigError
from lakehouse.webhooks import WEBHOOK_DEADLETTERS, Endpoint, Notifier, valid_signature

AT = datetime(2026, 11, 2, 15, 0, tzinfo=UTC)
SECRET = "out-secret-" + "p" * 30


@pytest.fixture
def receiver():
    """A local server that fails the first ``fail_first`` requests of each path with 503, then answers 204."""
    got: list[tuple[str, dict, bytes]] = []
    state = {"fail_first": 0, "count": {}}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            n = state["count"][self.path] = state["count"].get(self.path, 0) + 1
            got.append((self.path, dict(self.headers), body))
            code = 503 if n <= state["fail_first"] or self.path == "/down" else (400 if self.path == "/refuse" else 204)
            self.send_response(code)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", got, state
    server.shutdown()


def test_promotion_is_posted_signed_after_retries(receiver):
    url, got, state = receiver
    state["fail_first"] = 2
    notifier = Notifier((Endpoint(url + "/hook", SECRET),), retries=3, sleep=lambda s: None)
    (d,) = notifier.notify("on_model_promoted", {"model": "tick_tiny", "version": "3"}, AT)
    assert d.ok and d.attempts == 3 and d.status == 204
    path, headers, body = got[-1]
    assert json.loads(body) == {
        "event": "on_model_promoted",
        "occurred": AT.isoformat(),
        "data": {"model": "tick_tiny", "version": "3"},
    }
    assert valid_signature(SECRET, int(headers["X-MPS-Timestamp"]), body, headers["X-MPS-Signature"])
    assert not valid_signature("other" * 8, int(headers["X-MPS-Timestamp"]), body, headers["X-MPS-Signature"])


def test_failed_deliveries_are_dead_lettered_and_4xx_is_not_retried(receiver, lake):
    url, got, _ = receiver
    eps = (
        Endpoint(url + "/down", SECRET),
        Endpoint(url + "/refuse", SECRET),
        Endpoint(url + "/ok", SECRET, ("on_rollover",)),
    )
    out = Notifier(eps, lake=lake, retries=2, sleep=lambda s: None).notify(
        "on_data_stale", {"symbol_id": "SIM1:SIM"}, AT
    )
    assert [(d.url.rsplit("/", 1)[1], d.ok, d.attempts) for d in out] == [("down", False, 3), ("refuse", False, 1)]
    dead = lake.read(WEBHOOK_DEADLETTERS).sort("url")
    assert dead["url"].to_list() == [url + "/down", url + "/refuse"] and dead["last_error"].to_list() == [
        "HTTP 503",
        "HTTP 400",
    ]
    assert json.loads(dead["payload"][0])["data"] == {"symbol_id": "SIM1:SIM"}
    assert not [p for p, _, _ in got if p == "/ok"]  # not subscribed to on_data_stale


def test_unknown_events_are_config_errors():
    with pytest.raises(ConfigError, match="unknown events"):
        Endpoint("http://x", SECRET, ("on_everything",))
    with pytest.raises(ConfigError, match="unknown webhook event"):
        Notifier(()).notify("on_everything", {}, AT)
