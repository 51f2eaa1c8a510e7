"""Typed, strict profiles: one mapping from profile name to the services MPS talks to.

A profile is a YAML file in ``configs/profiles/<name>.yaml``. Unknown keys are errors that name the
key path, so a typo never turns into a silent default. Domain code receives a ``Profile`` (or the
pieces of it it needs); it never reads environment variables itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mps.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parent.parent
PROFILES_DIR = REPO_ROOT / "configs" / "profiles"


class Strict(BaseModel):
    """Base for config models: frozen, and unknown fields are rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class LakeConfig(Strict):
    root: str = Field(description="Lake root: a local path, file:// URI or s3://bucket/prefix")
    storage_options: dict[str, str] = Field(default_factory=dict)


class PrefectConfig(Strict):
    api_url: str | None = None
    home: str = ".mps/prefect"


class MlflowConfig(Strict):
    tracking_uri: str
    artifact_root: str


class NatsConfig(Strict):
    url: str = "nats://127.0.0.1:4222"
    embedded: bool = True
    store_dir: str = ".mps/nats"


class ApiConfig(Strict):
    host: str = "127.0.0.1"
    port: int = 8600
    webhook_secret_env: str = "MPS_WEBHOOK_SECRET"
    tokens_env: str = "MPS_API_TOKENS"


class Profile(Strict):
    name: str
    lake: LakeConfig
    prefect: PrefectConfig = PrefectConfig()
    mlflow: MlflowConfig
    nats: NatsConfig = NatsConfig()
    api: ApiConfig = ApiConfig()
    state_dir: str = ".mps"

    def resolve(self, base: Path) -> "Profile":
        """Return a copy with relative local paths made absolute against ``base``."""
        data = self.model_dump()
        root = data["lake"]["root"]
        if "://" not in root and not Path(root).is_absolute():
            data["lake"]["root"] = str((base / root).resolve())
        for section, key in (("prefect", "home"), ("nats", "store_dir")):
            if not Path(data[section][key]).is_absolute():
                data[section][key] = str((base / data[section][key]).resolve())
        if not Path(data["state_dir"]).is_absolute():
            data["state_dir"] = str((base / data["state_dir"]).resolve())
        return Profile.model_validate(data)


def format_validation_error(source: str, exc: ValidationError) -> str:
    """Turn a pydantic error into one line per bad key, each naming its dotted path."""
    lines = []
    for err in exc.errors():
        path = ".".join(str(p) for p in err["loc"]) or "<root>"
        lines.append(f"{source}: {path}: {err['msg']}")
    return "\n".join(lines)


def load_yaml_model(model: type[Strict], path: Path) -> Any:
    """Load ``path`` as YAML and validate it against ``model``; errors name the file and key."""
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: file not found") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(str(path), exc)) from exc


def available_profiles(directory: Path = PROFILES_DIR) -> list[str]:
    return sorted(p.stem for p in directory.glob("*.yaml"))


def load_profile(name: str = "local", directory: Path = PROFILES_DIR, base: Path = REPO_ROOT) -> Profile:
    """Load the named profile (``local`` or ``prod``) and resolve its relative paths."""
    path = directory / f"{name}.yaml"
    if not path.exists():
        raise ConfigError(f"unknown profile {name!r}; available: {', '.join(available_profiles(directory))}")
    return load_yaml_model(Profile, path).resolve(base)
