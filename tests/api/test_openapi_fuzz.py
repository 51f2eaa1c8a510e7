"""schemathesis against the served OpenAPI schema: no internal errors, only documented statuses.

Requests carry an admin token with the realtime entitlement (so every route is reachable). NATS and
Prefect are deliberately not configured here: routes that need them must answer their documented,
typed 503 ("unavailable", naming what is missing), which status_code_conformance checks; any 500
(an unhandled exception) fails.
"""

from __future__ import annotations

import tempfile

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import status_code_conformance

from lakehouse.storage import Lake
from lakehouse.tables import SILVER_BARS
from mps.api.app import create_app
from mps.api.auth import issue_token
from mps.api.services import Services
from tests.api.conftest import NOW, bars_frame, make_settings


def _app():
    """The app over a scratch lake with one symbol's bars (module level: schemathesis collects from it)."""
    lake = Lake(tempfile.mkdtemp(prefix="mps-fuzz-"))
    lake.append(SILVER_BARS, bars_frame("SIM1:SIM", 30, NOW).to_arrow())
    cfg = make_settings(rate_per_s=1e6, burst=1_000_000)
    app = create_app(Services(cfg, lake, clock=lambda: NOW))
    app.state.fuzz_token = issue_token(cfg, "fuzzer", ["admin"], realtime=True, ttl_s=86_400)
    return app


APP = _app()
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors_and_only_documented_statuses(case):
    token = APP.state.fuzz_token
    response = case.call(headers={"Authorization": f"Bearer {token}"}, timeout=60)
    assert response.status_code != 500, response.text
    case.validate_response(response, checks=(status_code_conformance,))
