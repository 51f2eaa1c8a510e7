"""The API's settings: typed, frozen, built once from the profile and the environment.

Secrets come only from the environment (never from the profile files in the repository):

- ``MPS_API_KEYS``: JWT signing keys, ``kid1:secret1,kid2:secret2`` (all verify; the first signs).
  Rotation = prepend a new key, keep the old one until its tokens expire, then drop it.
- ``MPS_WEBHOOK_SECRET`` (one secret for every webhook name) or ``MPS_WEBHOOK_SECRETS``
  (``name1:secret1,name2:secret2``).

Settings print with their secrets masked (``repr`` shows key ids and lengths only).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from core.errors import ConfigError


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

    @property
    def signing_kid(self) -> str:
        return next(iter(self.keys))

    def __repr__(self) -> str:  # never print a secret
        kids = ", ".join(self.keys)
        return f"ApiSettings(keys=[{kids}], webhooks=[{', '.join(self.webhook_secrets)}], nats={self.nats_url})"


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
    )
