"""One JSON error model for every failure the API returns.

Every error body is ``{"error": {"status": 401, "code": "unauthorized", "message": "..."}}``; the
OpenAPI schema documents it on each route, so clients parse one shape. Internal errors never echo
the exception (it may hold paths or secrets): they are logged with a request id instead.
"""

from __future__ import annotations

import logging
import uuid

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from core.errors import ConfigError, ContractError, MpsError, ServiceError

log = logging.getLogger("mps.api")


class ErrorDetail(BaseModel):
    status: int
    code: str
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail


class ApiError(Exception):
    """An error with an HTTP status and a stable machine-readable code."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "rate_limited",
    500: "internal",
    502: "bad_gateway",
    503: "unavailable",
    504: "timeout",
}

# The statuses each route may answer besides its success; documented in the OpenAPI schema.
COMMON = {401: {"model": ErrorBody}, 403: {"model": ErrorBody}, 422: {"model": ErrorBody}, 429: {"model": ErrorBody}}


def responses(*statuses: int) -> dict:
    """OpenAPI ``responses`` for the common statuses plus ``statuses``, all with the error model."""
    return {**COMMON, **{s: {"model": ErrorBody} for s in statuses}}


def error_response(status: int, message: str, code: str | None = None, headers: dict | None = None) -> JSONResponse:
    body = {"error": {"status": status, "code": code or CODES.get(status, "error"), "message": message}}
    return JSONResponse(body, status_code=status, headers=headers)


def install(app: FastAPI) -> None:
    """Register the handlers that turn every exception into the error model."""

    @app.exception_handler(ApiError)
    async def _api(_: Request, exc: ApiError):
        return error_response(exc.status, exc.message, exc.code, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException):
        return error_response(exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError):
        parts = []
        for e in exc.errors():
            where = ".".join(str(p) for p in e.get("loc", ()))
            parts.append(f"{where}: {e.get('msg', 'invalid')}")
        return error_response(422, "; ".join(parts) or "invalid request")

    @app.exception_handler(MpsError)
    async def _mps(_: Request, exc: MpsError):
        if isinstance(exc, ConfigError | ContractError):
            return error_response(400, str(exc))
        if isinstance(exc, ServiceError):
            return error_response(503, str(exc))
        return error_response(400, str(exc))

    @app.exception_handler(Exception)
    async def _internal(_: Request, exc: Exception):
        ref = uuid.uuid4().hex[:12]
        log.error("internal error ref=%s: %s", ref, type(exc).__name__, exc_info=exc)
        return error_response(500, f"internal error (ref {ref})")
