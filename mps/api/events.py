"""Prefect events from the API: POST them to the Prefect server's ``/api/events``.

Prefect's own webhooks are a Cloud feature; on OSS the MPS API verifies the webhook itself and
records the event with the server, where deployment triggers (``deployments/``) match on it. The
REST call (not the events websocket) makes acceptance synchronous: the API answers 202 only after
the server took the event, and 503 when it cannot reach it.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import httpx

from core.errors import ServiceError

WEBHOOK_EVENT_PREFIX = "mps.webhook."


def webhook_event(name: str, payload: dict, occurred: datetime, delivery_id: str | None = None) -> dict:
    """The Prefect event for a verified webhook ``name`` (event ``mps.webhook.<name>``)."""
    return {
        "id": str(uuid.uuid4()),
        "occurred": occurred.isoformat(),
        "event": f"{WEBHOOK_EVENT_PREFIX}{name}",
        "resource": {"prefect.resource.id": f"mps.webhook.{name}", "prefect.resource.name": name},
        "related": [],
        "payload": {**payload, "delivery_id": delivery_id} if delivery_id else payload,
    }


class PrefectEvents:
    """Send events to one Prefect server (``api_url`` ends with ``/api``)."""

    def __init__(self, api_url: str | None, timeout_s: float = 10.0) -> None:
        self.api_url = api_url.rstrip("/") if api_url else None
        self.timeout_s = timeout_s
        self._client: httpx.AsyncClient | None = None

    async def emit(self, event: dict) -> None:
        """Record ``event`` with the server; raise ServiceError if it is not configured or refuses it."""
        if not self.api_url:
            raise ServiceError("no Prefect API configured (profile prefect.api_url or PREFECT_API_URL)")
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout_s)
        try:
            resp = await self._client.post(f"{self.api_url}/events", json=[event])
        except httpx.HTTPError as exc:
            raise ServiceError(f"Prefect server {self.api_url} unreachable: {type(exc).__name__}") from None
        if resp.status_code >= 300:
            raise ServiceError(f"Prefect server refused the event: HTTP {resp.status_code} {resp.text[:200]}")

    async def run_deployment(self, name: str, parameters: dict) -> dict:
        """Create a flow run of deployment ``flow/deployment`` with ``parameters``; return its id and state."""
        if not self.api_url:
            raise ServiceError("no Prefect API configured (profile prefect.api_url or PREFECT_API_URL)")
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout_s)
        try:
            dep = await self._client.get(f"{self.api_url}/deployments/name/{name}")
            if dep.status_code == 404:
                from mps.api.errors import ApiError

                raise ApiError(404, "deployment_not_found", f"no deployment {name!r} is registered (run `mps up`)")
            dep.raise_for_status()
            run = await self._client.post(
                f"{self.api_url}/deployments/{dep.json()['id']}/create_flow_run", json={"parameters": parameters}
            )
            run.raise_for_status()
        except httpx.HTTPError as exc:
            raise ServiceError(f"Prefect server {self.api_url}: {type(exc).__name__} {exc}") from None
        body = run.json()
        return {"flow_run_id": body["id"], "deployment": name, "state": body["state"]["type"]}

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
