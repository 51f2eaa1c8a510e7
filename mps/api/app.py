"""Build the FastAPI application: routes, error model, limits, metrics, logs, traces.

app = create_app(Services(settings, lake))          # tests: in-process with TestClient
uvicorn.run(app_from_profile("local"), port=8600)   # `mps api`, `mps up`
"""

from __future__ import annotations

import logging
import time
import uuid
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, GCCollector, ProcessCollector, generate_latest

from mps.api import errors
from mps.api.auth import TokenCache
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


def create_app(services: Services, tracer_provider=None, *, serving: bool = False) -> FastAPI:
    """Return the API bound to ``services``; traces go to ``tracer_provider`` when one is given.

    ``serving``: this process exists to serve the API (``app_factory``): at start-up it settles the
    heap for the garbage collector (``settle_heap``). Tests building many apps in one process leave
    it off.
    """

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        if serving:
            settle_heap()
        yield
        await services.close()

    from mps.catalog import all_tables

    all_tables()  # import every table declaration once, not on a request
    app = FastAPI(title="MPS API", version="1", description=DESCRIPTION, lifespan=lifespan)
    settings = services.settings
    if tracer_provider is not None:
        services.tracer = tracer_for(tracer_provider)
    app.state.services = services
    app.state.settings = settings
    app.state.limiter = TokenBuckets(settings.rate_per_s, settings.burst)
    app.state.token_cache = TokenCache()
    app.state.replay_guard = ReplayGuard(2 * settings.webhook_tolerance_s)
    app.state.metrics = Metrics(services.lake)
    GCCollector(registry=app.state.metrics.registry)  # python_gc_collections_total: the GC behind a p99
    ProcessCollector(registry=app.state.metrics.registry)  # process_cpu_seconds_total, memory, open fds
    errors.install(app)
    app.include_router(data)
    app.include_router(actions)
    app.include_router(stream)

    @app.get("/metrics", tags=["ops"], response_class=Response)
    def metrics() -> Response:
        """Prometheus metrics (no token: scrape from inside the network)."""
        return Response(generate_latest(app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    app.add_middleware(Observe, services=services)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    return app


# Modules the routes import on first use; importing them at start-up keeps that cost (and the
# objects it creates) off the first requests and inside the heap that ``settle_heap`` freezes.
LAZY_IMPORTS = ("nats", "nats.errors", "anyio", "backtest.reference_scorer", "feature_store.messages")


GC_THRESHOLDS = (10_000, 20, 20)  # CPython's default is (700, 10, 10)


def settle_heap() -> None:
    """Import what requests would import lazily, collect once, freeze the heap, space collections.

    A full (generation 2) collection walks every live object: ~150k after start-up (FastAPI,
    pydantic, polars, pyarrow, onnxruntime), 50-500 ms on this machine, and it runs whenever enough
    objects survive younger collections, stalling every request in flight (the p99 of a Python
    server is mostly this). ``gc.freeze`` moves what start-up built into a permanent generation the
    collector skips. The requests themselves leave no reference cycles (measured on /health and
    /score latest and asof), but with many requests in flight CPython's default thresholds still
    collected ~55 times a second, each walk over every live young object: /score latest at 500 req/s
    on the loaded machine paused 0.96 s in 10 s for 611 collections (4 full ones, 72-132 ms each).
    With ``GC_THRESHOLDS`` the same load made 6-21 young collections (17-281 ms in all, 2-8 ms
    median) and no older one: fewer, larger young pauses and none of the full ones.
    """
    import gc
    import importlib

    for name in LAZY_IMPORTS:
        importlib.import_module(name)
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


class Observe:
    """ASGI middleware: a span, a metric and one JSON log line per request (pure ASGI: no body copies)."""

    def __init__(self, app, services: Services) -> None:
        self.app, self.services = app, services
        self._counters: dict[tuple[str, int], object] = {}  # (route, status) -> its counter child

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0 = time.perf_counter()
        headers = dict(scope.get("headers") or ())
        request_id = headers.get(b"x-request-id", b"").decode() or uuid.uuid4().hex[:16]
        status = 500

        async def send_wrapped(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", []).append((b"x-request-id", request_id.encode()))
            await send(message)

        method = scope["method"]
        with self.services.tracer.start_as_current_span(f"{method} {scope['path']}") as span:
            try:
                await self.app(scope, receive, send_wrapped)
            finally:
                span.set_attribute("http.status_code", status)
                route = getattr(scope.get("route"), "path", "unmatched")
                counter = self._counters.get((route, status))
                if counter is None:  # labels() locks and hashes its label values: look each child up once
                    counter = scope["app"].state.metrics.requests.labels(route=route, status=str(status))
                    self._counters[(route, status)] = counter
                counter.inc()
                client = (
                    getattr(scope.get("state", {}).get("client"), "id", None)
                    if isinstance(scope.get("state"), dict)
                    else None
                )
                extra = {
                    "method": method,
                    "path": route,
                    "status": status,
                    "client": client,
                    "ms": round((time.perf_counter() - t0) * 1e3, 3),
                    "request_id": request_id,
                }
                log.info("%s %s %d", method, route, status, extra=extra)


def app_from_profile(profile: str = "local", *, serving: bool = False) -> FastAPI:
    """The API of a profile: its lake, NATS and Prefect server; secrets from the environment."""
    from core.profile import load_profile
    from lakehouse.storage import Lake
    from mps.api.settings import settings_from_env
    from mps.catalog import all_tables

    all_tables()
    import os

    prof = load_profile(profile)
    lake = Lake.from_profile(prof)
    if os.environ.get("MPS_LAKE_ROOT"):  # benchmarks and tests point one API at a scratch lake
        lake = Lake(os.environ["MPS_LAKE_ROOT"], lake.storage_options)
    return create_app(Services(settings_from_env(prof), lake), serving=serving)


def app_factory() -> FastAPI:
    """uvicorn ``--factory`` entry (``mps up``): the profile named by ``MPS_PROFILE``, JSON logs."""
    import os

    from mps.api.observability import json_logging

    json_logging()
    return app_from_profile(os.environ.get("MPS_PROFILE", "local"), serving=True)
