"""Signed webhooks: the one signature scheme (inbound and outbound) and outbound delivery.

MPS tells the outside world about promotions, stale data and futures rollovers (seed MPS section
1: ``on_model_promoted``, ``on_data_stale``, ``on_rollover``) by POSTing signed JSON to configured
URLs. The scheme is the one the API's ``POST /webhooks/{name}`` verifies on the way in:

    X-MPS-Timestamp: <unix seconds>
    X-MPS-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>." + body)>

The timestamp is inside the MAC, so a captured request cannot be replayed later with a new time;
receivers refuse timestamps outside a tolerance and signatures seen before. Delivery retries with
exponential backoff on connection errors, 5xx and 429; a delivery that still fails is written to
``bronze.webhook_deadletters`` (its payload, URL and last error) so nothing is lost silently. It
lives here, the lowest layer that lakehouse, training and flows can all call.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import httpx
import pyarrow as pa

from core.errors import ConfigError
from lakehouse.schema import TS, TableSpec, col
from lakehouse.storage import Lake
from lakehouse.tables import register

EVENTS = ("on_model_promoted", "on_data_stale", "on_rollover")
SIGNATURE_HEADER = "X-MPS-Signature"
TIMESTAMP_HEADER = "X-MPS-Timestamp"
EVENT_HEADER = "X-MPS-Event"
DELIVERY_HEADER = "X-MPS-Delivery"

WEBHOOK_DEADLETTERS = register(
    TableSpec(
        "bronze",
        "webhook_deadletters",
        (
            col("delivery_id", pa.large_string()),
            col("event", pa.large_string()),
            col("url", pa.large_string()),
            col("payload", pa.large_string(), doc="the JSON body that could not be delivered"),
            col("attempts", pa.int64()),
            col("last_error", pa.large_string()),
            col("failed_at", TS),
        ),
        keys=("delivery_id", "url"),
        lineage=False,
        doc="outbound webhooks that failed after every retry",
    )
)


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """Return the ``sha256=<hex>`` signature of ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def signed_headers(secret: str, body: bytes, timestamp: int, event: str, delivery_id: str) -> dict[str, str]:
    """The headers of one signed delivery."""
    return {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: signature(secret, timestamp, body),
        EVENT_HEADER: event,
        DELIVERY_HEADER: delivery_id,
    }


def valid_signature(secret: str, timestamp: int, body: bytes, given: str) -> bool:
    """Compare ``given`` with the expected signature in constant time."""
    return hmac.compare_digest(signature(secret, timestamp, body), given.strip())


@dataclass(frozen=True)
class Endpoint:
    """One subscriber: where to POST which events, signed with which secret."""

    url: str
    secret: str = field(repr=False)
    events: tuple[str, ...] = EVENTS

    def __post_init__(self) -> None:
        unknown = sorted(set(self.events) - set(EVENTS))
        if unknown:
            raise ConfigError(f"webhook {self.url}: unknown events {unknown}; known: {list(EVENTS)}")


@dataclass
class Delivery:
    """The outcome of sending one event to one endpoint."""

    url: str
    delivery_id: str
    ok: bool
    attempts: int
    status: int | None = None
    error: str | None = None


@dataclass(frozen=True)
class Notifier:
    """Send events to endpoints with retries; dead-letter what still fails into the lake (if given)."""

    endpoints: tuple[Endpoint, ...]
    lake: Lake | None = None  # None keeps dead letters in the result only
    retries: int = 3
    backoff_s: float = 0.5
    timeout_s: float = 5.0
    sleep: Callable[[float], None] = time.sleep

    def notify(self, event: str, payload: dict, at: datetime) -> list[Delivery]:
        """POST ``{"event", "occurred", "data"}`` to every endpoint subscribed to ``event``."""
        if event not in EVENTS:
            raise ConfigError(f"unknown webhook event {event!r}; known: {list(EVENTS)}")
        body = json.dumps({"event": event, "occurred": at.isoformat(), "data": payload}, sort_keys=True).encode()
        out = [self._send(ep, event, body, int(at.timestamp())) for ep in self.endpoints if event in ep.events]
        failed = [d for d in out if not d.ok]
        if failed and self.lake is not None:
            self._dead_letter(event, body, failed, at)
        return out

    def _send(self, ep: Endpoint, event: str, body: bytes, timestamp: int) -> Delivery:
        delivery = Delivery(ep.url, uuid.uuid4().hex, ok=False, attempts=0)
        headers = signed_headers(ep.secret, body, timestamp, event, delivery.delivery_id)
        with httpx.Client(timeout=self.timeout_s) as client:
            for attempt in range(1, self.retries + 2):
                delivery.attempts = attempt
                try:
                    resp = client.post(ep.url, content=body, headers=headers)
                    delivery.status, delivery.error = resp.status_code, None
                    if resp.status_code < 300:
                        delivery.ok = True
                        return delivery
                    delivery.error = f"HTTP {resp.status_code}"
                    if resp.status_code < 500 and resp.status_code != 429:
                        return delivery  # the receiver refused it: retrying will not help
                except httpx.HTTPError as exc:
                    delivery.error = f"{type(exc).__name__}: {exc}"
                if attempt <= self.retries:
                    self.sleep(self.backoff_s * 2 ** (attempt - 1))
        return delivery

    def _dead_letter(self, event: str, body: bytes, failed: list[Delivery], at: datetime) -> None:
        at_ns = int(at.timestamp() * 1e9)
        rows: dict[str, list[object]] = {
            "delivery_id": [d.delivery_id for d in failed],
            "event": [event] * len(failed),
            "url": [d.url for d in failed],
            "payload": [body.decode()] * len(failed),
            "attempts": [d.attempts for d in failed],
            "last_error": [d.error or "" for d in failed],
            "failed_at": [at_ns] * len(failed),
        }
        assert self.lake is not None  # callers dead-letter only when a lake is configured
        self.lake.append(WEBHOOK_DEADLETTERS, pa.table(rows))


def endpoints_from_config(entries: list[dict], secrets: dict[str, str]) -> tuple[Endpoint, ...]:
    """Build endpoints from config entries ``{url, secret_name, events}`` and a secrets mapping."""
    out = []
    for i, entry in enumerate(entries):
        name = entry.get("secret_name", "default")
        if name not in secrets:
            raise ConfigError(f"webhooks[{i}] ({entry.get('url')}): no secret named {name!r} was provided")
        out.append(Endpoint(entry["url"], secrets[name], tuple(entry.get("events", EVENTS))))
    return tuple(out)
