"""API fixtures: settings with two active keys, a small lake, the app in-process, token helpers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from fastapi.testclient import TestClient

from lakehouse.tables import SILVER_BARS, SILVER_FRESHNESS
from mps.api.app import create_app
from mps.api.auth import issue_token
from mps.api.services import Services
from mps.api.settings import ApiSettings

NOW = datetime(2026, 11, 2, 15, 0, tzinfo=UTC)
KEYS = {"k2026b": "b" * 40, "k2026a": "a" * 40}  # first signs; both verify (rotation)
WEBHOOK_SECRET = "whsec-" + "z" * 32


def make_settings(**kw) -> ApiSettings:
    base = dict(keys=dict(KEYS), webhook_secrets={"vendor-file": WEBHOOK_SECRET}, delay_s=900, burst=50, rate_per_s=10)
    return ApiSettings(**{**base, **kw})


def bars_frame(symbol: str, n: int, end: datetime) -> pl.DataFrame:
    """``n`` one-minute bars ending at ``end``, one a minute."""
    ts = [end - timedelta(minutes=n - 1 - i) for i in range(n)]
    quality = {"stale": False, "outlier_frac": 0.0, "n_src": 3, "lat_ms": 5.0, "sources": ["a"], "outliers": []}
    return pl.DataFrame(
        {
            "symbol_id": [symbol] * n,
            "tf": ["1m"] * n,
            "ts": ts,
            "adjustment": ["raw"] * n,
            "open": [100.0 + i for i in range(n)],
            "high": [101.0 + i for i in range(n)],
            "low": [99.0 + i for i in range(n)],
            "close": [100.5 + i for i in range(n)],
            "volume": [10.0] * n,
            "vwap": [100.2 + i for i in range(n)],
            "n_trades": [5] * n,
            "quality": [quality] * n,
            "known_at": [t + timedelta(seconds=1) for t in ts],
        }
    )


@pytest.fixture
def api_lake(lake):
    lake.append(SILVER_BARS, bars_frame("SIM1:SIM", 60, NOW).to_arrow())
    fresh = pl.DataFrame(
        {
            "symbol_id": ["SIM1:SIM", "SIM1:SIM", "SIM2:SIM"],
            "source": ["sim_a", "sim_a", "sim_b"],
            "as_of": [NOW - timedelta(minutes=5), NOW, NOW],
            "last_ts": [NOW - timedelta(minutes=6), NOW - timedelta(seconds=2), NOW - timedelta(hours=1)],
            "age_ms": [60_000.0, 2_000.0, 3_600_000.0],
            "stale": [False, False, True],
        }
    )
    lake.append(SILVER_FRESHNESS, fresh.to_arrow())
    return lake


@pytest.fixture
def settings():
    return make_settings()


@pytest.fixture
def app(api_lake, settings):
    return create_app(Services(settings, api_lake, clock=lambda: NOW))


@pytest.fixture
def client(app):
    with TestClient(app) as c:
        yield c


@pytest.fixture
def token(settings):
    def make(*scopes: str, realtime: bool = False, sub: str = "client-1", **kw) -> dict[str, str]:
        return {"Authorization": "Bearer " + issue_token(settings, sub, list(scopes), realtime=realtime, **kw)}

    return make
