"""The API's settings: typed, frozen, built once from the profile and the environment.

Secrets come only from the environment (never from the profile files in the repository):

- ``MPS_API_KEYS``: JWT signing keys, ``kid1:secret1,kid2:secret2`` (all verify; the first signs).
  Rotation = prepend a new key, keep the old one until its tokens expire, then drop it.
- ``MPS_WEBHOOK_SECRET`` (one secret for every webhook name) or ``MPS_WEBHOOK_SECRETS``
  (``name1:secret1,name2:secret2``).

Per deployment (not secret): ``MPS_API_RATE_PER_S`` (requests a second each client's token bucket
refills, default 200) and ``MPS_API_BURST`` (requests a client may save up, default 400). Rate
limiting is always on; size these above a client's expected load.

Settings print with their secrets masked (``repr`` shows key ids and lengths only).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import TypeVar

from core.errors import ConfigError

T = TypeVar("T", int, float)


def _pairs(raw: str, what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in filter(None, (p.strip() for p in raw.split(","))):
        name, sep, secret = item.partition(":")
        if not sep or not name or not secret:
            raise ConfigError(f"{what}: expected name:secret pairs separated by commas (got an item without ':')")
        out[name] = secret
    return out


@dataclass(frozen=True)
class ApiSettings:
    """What the API needs besides the lake; ``keys`` and ``webhook_secrets`` are secrets."""

    keys: dict[str, str] = field(repr=False)
    webhook_secrets: dict[str, str] = field(default_factory=dict, repr=False)
    issuer: str = "mps"
    rate_per_s: float = 200.0
    burst: int = 400
    max_body_bytes: int = 1 << 20
    delay_s: int = 900  # seed section 12: clients without realtime rights see data 15 minutes late
    webhook_tolerance_s: int = 300
    nats_url: str | None = None
    prefect_api_url: str | None = None
    score_timeout_s: float = 2.0
    model_name: str = "tick_tiny"
    model_path: str | None = None  # ONNX used by /score asof when no champion pointer is reachable

    def __post_init__(self) -> None:
        if not self.keys:
            raise ConfigError("API: no JWT keys; set MPS_API_KEYS=kid:secret[,kid2:secret2]")
        short = [kid for kid, secret in self.keys.items() if len(secret) < 32]
        if short:
            raise ConfigError(f"API: JWT keys {short} are shorter than 32 bytes (HS256 needs at least 32)")
        if not (math.isfinite(self.rate_per_s) and self.rate_per_s > 0):
            raise ConfigError(f"API: rate_per_s must be a positive number of requests a second (got {self.rate_per_s})")
        if self.burst < 1:
            raise ConfigError(f"API: burst must be at least 1 request (got {self.burst})")

    @property
    def signing_kid(self) -> str:
        return next(iter(self.keys))

    def __repr__(self) -> str:  # never print a secret
        kids = ", ".join(self.keys)
        hooks = ", ".join(self.webhook_secrets)
        limit = f"rate={self.rate_per_s:g}/s burst={self.burst}"
        return f"ApiSettings(keys=[{kids}], webhooks=[{hooks}], nats={self.nats_url}, {limit})"


def settings_from_env(profile, env: dict[str, str] | None = None) -> ApiSettings:
    """Build the settings from a loaded profile and the environment (``os.environ`` by default)."""
    env = dict(os.environ if env is None else env)
    keys = _pairs(env.get("MPS_API_KEYS", ""), "MPS_API_KEYS")
    hooks = _pairs(env.get("MPS_WEBHOOK_SECRETS", ""), "MPS_WEBHOOK_SECRETS")
    if env.get("MPS_WEBHOOK_SECRET"):
        hooks.setdefault("*", env["MPS_WEBHOOK_SECRET"])
    return ApiSettings(
        keys=keys,
        webhook_secrets=hooks,
        nats_url=env.get("MPS_NATS_URL") or profile.nats.url,
        prefect_api_url=env.get("PREFECT_API_URL") or profile.prefect.api_url,
        model_path=env.get("MPS_MODEL_PATH"),
        rate_per_s=_positive(env, "MPS_API_RATE_PER_S", float, ApiSettings.rate_per_s),
        burst=_positive(env, "MPS_API_BURST", int, ApiSettings.burst),
    )


def _positive(env: dict[str, str], name: str, kind: type[T], default: T) -> T:
    """``env[name]`` as a positive finite ``kind`` (``default`` when unset); ConfigError naming it otherwise."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    what = "a positive whole number" if kind is int else "a positive number of requests a second"
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r}: expected {what}") from None
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{name}={raw!r}: expected {what}")
    return value
