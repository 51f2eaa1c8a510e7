"""JWT bearer tokens with rotating keys, scopes and entitlements.

A token is HS256-signed with one of several active keys, named by the ``kid`` header; any active
key verifies, so keys rotate without downtime. Claims: ``sub`` (the client id: rate limits and
logs key on it), ``scope`` (space-separated: ``read:bars``, ``read:signals``, ``admin``),
``exp`` (required), ``iss`` and ``ent`` (entitlements: ``realtime`` sees live data; without it
data is delayed, seed section 12). ``admin`` implies every scope.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import jwt
from fastapi import Request

from mps.api.errors import ApiError
from mps.api.settings import ApiSettings

SCOPES = ("read:bars", "read:signals", "admin")
ALGORITHM = "HS256"
LEEWAY_S = 5  # clock skew tolerated on ``exp``


@dataclass(frozen=True)
class Client:
    """The authenticated caller."""

    id: str
    scopes: frozenset[str]
    realtime: bool

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes


def issue_token(
    settings: ApiSettings,
    sub: str,
    scopes: list[str],
    *,
    ttl_s: int = 3600,
    realtime: bool = False,
    kid: str | None = None,
    now: float | None = None,
) -> str:
    """Sign a token for ``sub`` with ``scopes`` (with the newest key unless ``kid`` is given)."""
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown:
        raise ValueError(f"unknown scopes {unknown}; known: {list(SCOPES)}")
    kid = kid or settings.signing_kid
    iat = int(time.time() if now is None else now)
    claims = {"sub": sub, "scope": " ".join(scopes), "iat": iat, "exp": iat + ttl_s, "iss": settings.issuer}
    if realtime:
        claims["ent"] = ["realtime"]
    return jwt.encode(claims, settings.keys[kid], algorithm=ALGORITHM, headers={"kid": kid})


class TokenCache:
    """Tokens already verified, by their exact string, each kept until it expires (bounded LRU).

    A token string is immutable and signed, so once one verifies, the same string names the same
    client until ``exp`` (+ the leeway ``verify`` allows): PyJWT's header parse, HMAC and claim
    checks (the largest cost of a request in the API's profile) run once per token instead of once
    per request. Only tokens that verified are kept, so forged tokens cannot fill it; one cache
    belongs to one app, whose settings (and so its keys) are frozen: dropping a key means a new app
    and an empty cache. Used from the event loop only (the ``require`` dependency is async).
    """

    def __init__(self, max_entries: int = 10_000, clock: Callable[[], float] = time.time) -> None:
        self.max_entries, self.clock = max_entries, clock
        self._entries: OrderedDict[str, tuple[Client, float]] = OrderedDict()

    def get(self, token: str) -> Client | None:
        hit = self._entries.get(token)
        if hit is None:
            return None
        client, valid_until = hit
        if self.clock() >= valid_until:
            del self._entries[token]
            return None
        self._entries.move_to_end(token)
        return client

    def put(self, token: str, client: Client, exp: float) -> None:
        self._entries[token] = (client, exp + LEEWAY_S)
        self._entries.move_to_end(token)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


def verify(settings: ApiSettings, token: str, cache: TokenCache | None = None) -> Client:
    """Return the client a token names; raise ApiError(401) if it is malformed, unsigned, expired.

    With ``cache``, a token that verified before and has not expired is answered from it.
    """
    if cache is not None:
        hit = cache.get(token)
        if hit is not None:
            return hit
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise ApiError(401, "unauthorized", "malformed bearer token", _challenge("invalid_token")) from None
    kid = header.get("kid")
    if header.get("alg") != ALGORITHM or kid not in settings.keys:
        raise ApiError(401, "unauthorized", "token signed with an unknown key", _challenge("invalid_token"))
    try:
        claims = jwt.decode(
            token,
            settings.keys[kid],
            algorithms=[ALGORITHM],
            issuer=settings.issuer,
            options={"require": ["exp", "sub", "iss"]},
            leeway=LEEWAY_S,
        )
    except jwt.ExpiredSignatureError:
        raise ApiError(401, "token_expired", "token expired", _challenge("invalid_token")) from None
    except jwt.PyJWTError as exc:
        raise ApiError(401, "unauthorized", f"invalid token: {exc}", _challenge("invalid_token")) from None
    scopes = frozenset(str(claims.get("scope", "")).split())
    client = Client(id=str(claims["sub"]), scopes=scopes, realtime="realtime" in (claims.get("ent") or []))
    if cache is not None:
        cache.put(token, client, float(claims["exp"]))
    return client


def _challenge(error: str) -> dict[str, str]:
    return {"WWW-Authenticate": f'Bearer error="{error}"'}


def authenticate(request: Request) -> Client:
    """Read the bearer token of ``request`` and return its client (cached on the request)."""
    cached = getattr(request.state, "client", None)
    if cached is not None:
        return cached
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "unauthorized", "missing bearer token", {"WWW-Authenticate": "Bearer"})
    client = verify(request.app.state.settings, token.strip(), getattr(request.app.state, "token_cache", None))
    request.state.client = client
    return client


def require(scope: str):
    """A dependency: the caller must hold ``scope`` (or admin); it is then rate-limited.

    ``async`` although it never awaits: FastAPI runs a plain ``def`` dependency in its thread pool,
    and that hop cost more than the check itself (it does no I/O).
    """

    async def dependency(request: Request) -> Client:
        client = authenticate(request)
        if not client.allows(scope):
            raise ApiError(403, "forbidden", f"token lacks scope {scope!r}", _challenge("insufficient_scope"))
        request.app.state.limiter.take(client.id)
        return client

    dependency.__name__ = f"require_{scope.replace(':', '_')}"
    return dependency
