"""Action endpoints: score, backtest, promote, inbound webhooks.

``/backtest`` and ``/governance/promote`` start the matching Prefect deployment (the same flow the
UI's Run button and the schedules start) and answer 202 with the flow run id: long jobs belong to
the orchestrator, not to an HTTP request.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from mps.api.auth import Client, require
from mps.api.errors import ApiError, responses
from mps.api.events import webhook_event
from mps.api.routes_data import _aware
from mps.api.scoring import champion_onnx, score_asof, score_latest
from mps.api.webhooks import verify_webhook, wall_seconds

router = APIRouter()


class ScoreRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    symbol_id: str = Field(min_length=1, max_length=64, examples=["SIM1:SIM"])
    tf: str | None = Field(None, pattern=r"^\d+[smhd]$")
    mode: Literal["latest", "asof"] = "latest"
    asof: datetime | None = Field(None, description="decision time for mode=asof (gold rows known then)")
    model_name: str | None = Field(None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_\-]+$")


class ScoreResponse(BaseModel):
    mode: str
    delayed: bool
    latency_ms: float
    signal: dict[str, Any]


@router.post(
    "/score", response_model=ScoreResponse, responses=responses(400, 404, 409, 502, 503, 504), tags=["signals"]
)
async def score(
    body: ScoreRequest, request: Request, client: Annotated[Client, Depends(require("read:signals"))]
) -> ScoreResponse:
    """Score a symbol: ``latest`` through the Rust scorer, ``asof`` from gold with the champion's ONNX."""
    services = request.app.state.services
    model = body.model_name or services.settings.model_name
    t0 = time.perf_counter()
    mode, asof, delayed = body.mode, body.asof, False
    if not client.realtime:  # seed section 12: without realtime rights, score as of now - delay
        latest_allowed = services.clock() - timedelta(seconds=services.settings.delay_s)
        mode, delayed = "asof", True
        asof = min(asof, latest_allowed) if asof else latest_allowed
    if mode == "latest":
        signal = await score_latest(services, body.symbol_id, body.tf, model)
    else:
        if asof is None:
            raise ApiError(422, "invalid_request", "mode=asof needs asof")
        asof = _aware(asof, "asof")
        path = await champion_onnx(services, model)
        import anyio

        signal = await anyio.to_thread.run_sync(score_asof, services, path, body.symbol_id, asof)
    ms = (time.perf_counter() - t0) * 1e3
    request.app.state.metrics.score_latency.labels(mode=mode).observe(ms)
    return ScoreResponse(mode=mode, delayed=delayed, latency_ms=ms, signal=signal)


class RunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    deployment: str | None = Field(None, pattern=r"^[a-z0-9_\-]+/[a-z0-9_\-]+$", description="flow/deployment")
    parameters: dict[str, Any] = Field(default_factory=dict)


class RunAccepted(BaseModel):
    flow_run_id: str
    deployment: str
    state: str


BACKTEST_DEPLOYMENT = "backtest/default"
PROMOTE_DEPLOYMENT = "promote/default"


@router.post(
    "/backtest", status_code=202, response_model=RunAccepted, responses=responses(400, 404, 503), tags=["research"]
)
async def backtest(
    body: RunRequest, request: Request, client: Annotated[Client, Depends(require("admin"))]
) -> RunAccepted:
    """Start a backtest flow run (deployment ``backtest/default`` unless named) with ``parameters``."""
    events = request.app.state.services.events
    return RunAccepted(**await events.run_deployment(body.deployment or BACKTEST_DEPLOYMENT, body.parameters))


@router.post(
    "/governance/promote",
    status_code=202,
    response_model=RunAccepted,
    responses=responses(400, 404, 503),
    tags=["governance"],
)
async def promote(
    body: RunRequest, request: Request, client: Annotated[Client, Depends(require("admin"))]
) -> RunAccepted:
    """Start the promotion flow (champion vs challenger on out-of-sample evidence); admin only."""
    events = request.app.state.services.events
    return RunAccepted(**await events.run_deployment(body.deployment or PROMOTE_DEPLOYMENT, body.parameters))


class WebhookAccepted(BaseModel):
    event: str
    event_id: str


@router.post(
    "/webhooks/{name}",
    status_code=202,
    response_model=WebhookAccepted,
    responses=responses(400, 404, 409, 413, 503),
    tags=["webhooks"],
)
async def webhook(
    request: Request, name: Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9_\-]{0,63}$")]
) -> WebhookAccepted:
    """Verify a signed webhook (HMAC-SHA256 + timestamp, no replays) and emit Prefect event
    ``mps.webhook.<name>`` with the JSON body as payload; deployment triggers act on it."""
    app = request.app
    services = app.state.services
    body = await request.body()
    verify_webhook(
        services.settings.webhook_secrets,
        name,
        request.headers,
        body,
        wall_seconds(),
        services.settings.webhook_tolerance_s,
        app.state.replay_guard,
    )
    try:
        payload = json.loads(body) if body else {}
    except json.JSONDecodeError:
        raise ApiError(400, "bad_json", "webhook body is not JSON") from None
    if not isinstance(payload, dict):
        raise ApiError(400, "bad_json", "webhook body must be a JSON object")
    event = webhook_event(name, payload, services.clock(), request.headers.get("x-mps-delivery"))
    await services.events.emit(event)
    app.state.metrics.webhooks.labels(name=name).inc()
    return WebhookAccepted(event=event["event"], event_id=event["id"])
