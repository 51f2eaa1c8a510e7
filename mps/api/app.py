"""Build the FastAPI application: routes, error model, limits, metrics, logs, traces.

app = create_app(Services(settings, lake))          # tests: in-process with TestClient
uvicorn.run(app_from_profile("local"), port=8600)   # `mps api`, `mps up`
"""

from __future__ import annotations

import logging
import time
import uuid
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from mps.api import errors
from mps.api.limits import BodyLimit, TokenBuckets
from mps.api.observability import Metrics, tracer_for
from mps.api.routes_actions import router as actions
from mps.api.routes_data import router as data
from mps.api.routes_stream import router as stream
from mps.api.services import Services
from mps.api.webhooks import ReplayGuard

log = logging.getLogger("mps.api")

DESCRIPTION = """Market data, features and calibrated price distributions over HTTP.

Authenticate with a JWT bearer token (`Authorization: Bearer ...`) carrying the scopes a route
names (`read:bars`, `read:signals`, `admin`). Clients without the `realtime` entitlement see data
delayed by the configured delay. Every error has one shape: `{"error": {status, code, message}}`.
Webhooks (`POST /webhooks/{name}`) are signed with HMAC-SHA256 instead of a token.
"""


def create_app(services: Services, tracer_provider=None) -> FastAPI:
    """Return the API bound to ``services``; traces go to ``tracer_provider`` when one is given."""

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        yield
        await services.close()

    app = FastAPI(title="MPS API", version="1", description=DESCRIPTION, lifespan=lifespan)
    settings = services.settings
    if tracer_provider is not None:
        services.tracer = tracer_for(tracer_provider)
    app.state.services = services
    app.state.settings = settings
    app.state.limiter = TokenBuckets(settings.rate_per_s, settings.burst)
    app.state.replay_guard = ReplayGuard(2 * settings.webhook_tolerance_s)
    app.state.metrics = Metrics(services.lake)
    errors.install(app)
    app.include_router(data)
    app.include_router(actions)
    app.include_router(stream)

    @app.get("/metrics", tags=["ops"], response_class=Response)
    def metrics() -> Response:
        """Prometheus metrics (no token: scrape from inside the network)."""
        return Response(generate_latest(app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.middleware("http")
    async def observe(request: Request, call_next):
        request_id = request.headers.get("x-request-id") or uuid.uuid4().hex[:16]
        t0 = time.perf_counter()
        name = f"{request.method} {request.url.path}"
        with services.tracer.start_as_current_span(name, attributes={"http.method": request.method}) as span:
            response = await call_next(request)
            span.set_attribute("http.status_code", response.status_code)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        app.state.metrics.requests.labels(route=path, status=str(response.status_code)).inc()
        client = getattr(request.state, "client", None)
        log.info(
            "%s %s %d",
            request.method,
            path,
            response.status_code,
            extra={
                "method": request.method,
                "path": path,
                "status": response.status_code,
                "client": client.id if client else None,
                "ms": round((time.perf_counter() - t0) * 1e3, 3),
                "request_id": request_id,
            },
        )
        response.headers["x-request-id"] = request_id
        return response

    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    return app


def app_from_profile(profile: str = "local") -> FastAPI:
    """The API of a profile: its lake, NATS and Prefect server; secrets from the environment."""
    from core.profile import load_profile
    from lakehouse.storage import Lake
    from mps.api.settings import settings_from_env
    from mps.catalog import all_tables

    all_tables()
    prof = load_profile(profile)
    return create_app(Services(settings_from_env(prof), Lake.from_profile(prof)))


def app_factory() -> FastAPI:
    """uvicorn ``--factory`` entry (``mps up``): the profile named by ``MPS_PROFILE``, JSON logs."""
    import os

    from mps.api.observability import json_logging

    json_logging()
    return app_from_profile(os.environ.get("MPS_PROFILE", "local"))
