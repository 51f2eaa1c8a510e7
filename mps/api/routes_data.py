"""Read endpoints: health, silver bars, gold features, freshness.

Clients without the ``realtime`` entitlement see only rows whose ``ts`` is at least the settings'
delay old (seed section 12: delayed data); the response says which cutoff applied.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, overload

import polars as pl
import pyarrow.compute as pc
from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel

from lakehouse.storage import ts_value
from lakehouse.tables import SILVER_BARS, SILVER_FRESHNESS, TABLES
from mps.api.auth import Client, require
from mps.api.errors import ApiError, responses

router = APIRouter()


class Health(BaseModel):
    status: str
    lake: str
    tables: int
    time: datetime


class Rows(BaseModel):
    """Rows of one table, oldest first, with the cutoff that the caller's entitlement applied."""

    table: str
    delayed: bool
    cutoff: datetime | None
    count: int
    rows: list[dict[str, Any]]


@router.get("/health", response_model=Health, tags=["ops"])
async def health(request: Request) -> Health:
    """Liveness: the API answers and knows its lake (no token needed)."""
    # async: it does no I/O, so it runs on the event loop instead of hopping to the thread pool
    services = request.app.state.services
    return Health(status="ok", lake=services.lake.root, tables=len(TABLES), time=services.clock())


def _cutoff(request: Request, client: Client, end: datetime | None) -> tuple[datetime | None, bool]:
    """The latest ts the client may see: ``end``, capped at now - delay without realtime rights."""
    if client.realtime:
        return end, False
    services = request.app.state.services
    delayed = services.clock() - timedelta(seconds=services.settings.delay_s)
    return (min(end, delayed) if end else delayed), True


def _rows(df: pl.DataFrame, limit: int) -> list[dict]:
    return df.sort("ts").tail(limit).to_dicts()


LO, HI = datetime(1970, 1, 1, tzinfo=UTC), datetime(2262, 4, 11, tzinfo=UTC)  # int64 nanoseconds


@overload
def _aware(value: datetime, name: str = "time") -> datetime: ...
@overload
def _aware(value: None, name: str = "time") -> None: ...
@overload
def _aware(value: datetime | None, name: str = "time") -> datetime | None: ...
def _aware(value: datetime | None, name: str = "time") -> datetime | None:
    """``value`` in UTC (naive means UTC); 422 outside what int64 nanoseconds can hold."""
    if value is None:
        return None
    value = value if value.tzinfo else value.replace(tzinfo=UTC)
    if not LO <= value < HI:
        raise ApiError(422, "invalid_request", f"{name}: {value.isoformat()} is outside 1970-01-01..2262-04-11")
    return value


@router.get("/bars", response_model=Rows, responses=responses(400), tags=["data"])
def bars(
    request: Request,
    client: Annotated[Client, Depends(require("read:bars"))],
    symbol_id: Annotated[str, Query(min_length=1, max_length=64, examples=["SIM1:SIM"])],
    tf: Annotated[str, Query(pattern=r"^\d+[smhd]$", examples=["1m"])] = "1m",
    adjustment: Annotated[str, Query(pattern="^(raw|adjusted)$")] = "raw",
    start: datetime | None = None,
    end: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> Rows:
    """Reconciled bars from silver.bars (bar END times), at most ``limit`` of the latest in range."""
    start, end = _aware(start, "start"), _aware(end, "end")
    cutoff, delayed = _cutoff(request, client, end)
    expr = (pc.field("symbol_id") == symbol_id) & (pc.field("tf") == tf) & (pc.field("adjustment") == adjustment)
    if start is not None:
        expr &= pc.field("ts") >= ts_value(start)
    if cutoff is not None:
        expr &= pc.field("ts") <= ts_value(cutoff)
    df = request.app.state.services.lake.read(SILVER_BARS, filter=expr)
    rows = _rows(df, limit)
    return Rows(table=SILVER_BARS.qualified, delayed=delayed, cutoff=cutoff, count=len(rows), rows=rows)


def feature_table(name: str):
    """The gold feature table ``name`` (declared by the feature store), or 404."""
    spec = TABLES.get(f"gold.{name}")  # create_app registered every declared table
    if spec is None or "feature_set" not in spec.column_names:
        known = sorted(
            q.split(".", 1)[1] for q, s in TABLES.items() if q.startswith("gold.") and "feature_set" in s.column_names
        )
        raise ApiError(404, "unknown_feature_table", f"no gold feature table {name!r}; known: {known}")
    return spec


@router.get("/features", response_model=Rows, responses=responses(400, 404), tags=["data"])
def features(
    request: Request,
    client: Annotated[Client, Depends(require("read:bars"))],
    symbol_id: Annotated[str, Query(min_length=1, max_length=64)],
    table: Annotated[str, Query(pattern=r"^[a-z0-9_]+$", examples=["tick_features"])] = "tick_features",
    tf: Annotated[str | None, Query(pattern=r"^\d+[smhd]$")] = None,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
) -> Rows:
    """Point-in-time feature rows from gold (``known_at`` within the caller's cutoff)."""
    spec = feature_table(table)
    start, end = _aware(start, "start"), _aware(end, "end")
    cutoff, delayed = _cutoff(request, client, end)
    expr = pc.field("symbol_id") == symbol_id
    if tf is not None:
        expr &= pc.field("tf") == tf
    if start is not None:
        expr &= pc.field("ts") >= ts_value(start)
    if cutoff is not None:
        expr &= pc.field("known_at") <= ts_value(cutoff)
    df = request.app.state.services.lake.read(spec, filter=expr)
    if "date" in df.columns:
        df = df.drop("date")
    rows = _rows(df, limit)
    return Rows(table=spec.qualified, delayed=delayed, cutoff=cutoff, count=len(rows), rows=rows)


@router.get("/telemetry/freshness", response_model=Rows, responses=responses(400), tags=["ops"])
def freshness(
    request: Request,
    client: Annotated[Client, Depends(require("read:bars"))],
    symbol_id: Annotated[str | None, Query(max_length=64)] = None,
) -> Rows:
    """The latest silver.freshness record per (symbol, source): data age and the stale flag."""
    expr = pc.field("symbol_id") == symbol_id if symbol_id else None
    df = request.app.state.services.lake.read(SILVER_FRESHNESS, filter=expr)
    if df.height:
        df = df.sort("as_of").group_by("symbol_id", "source", maintain_order=True).last().sort("symbol_id", "source")
    rows = df.to_dicts()
    return Rows(table=SILVER_FRESHNESS.qualified, delayed=False, cutoff=None, count=len(rows), rows=rows)
