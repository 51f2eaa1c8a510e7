"""Typed, strict profiles: one mapping from profile name to the services MPS talks to.

A profile is ``<config dir>/profiles/<name>.yaml`` (the packaged defaults are ``local`` and
``prod``). Unknown keys are errors that name the key path, so a typo never turns into a silent
default. Domain code receives a ``Profile`` (or the pieces it needs); it never reads environment
variables: the shell does that and passes what it found.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from core.config import Strict, load_yaml_model
from core.errors import ConfigError
from core.resources import config_dir


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
    config_dir: str | None = Field(None, description="the user's config directory (defaults: the packaged one)")

    def resolve(self, base: Path) -> Profile:
        """Return a copy with relative local paths made absolute against ``base``."""
        data = self.model_dump()
        root = data["lake"]["root"]
        if "://" not in root and not Path(root).is_absolute():
            data["lake"]["root"] = str((base / root).resolve())
        for section, key in (("prefect", "home"), ("nats", "store_dir")):
            if not Path(data[section][key]).is_absolute():
                data[section][key] = str((base / data[section][key]).resolve())
        for key in ("state_dir", "config_dir"):
            if data[key] is not None and not Path(data[key]).is_absolute():
                data[key] = str((base / data[key]).resolve())
        for key in ("tracking_uri", "artifact_root"):
            value = data["mlflow"][key]
            if value.startswith("sqlite:///") and not value.startswith("sqlite:////"):
                data["mlflow"][key] = "sqlite:///" + str((base / value.removeprefix("sqlite:///")).resolve())
            elif "://" not in value and not Path(value).is_absolute():
                data["mlflow"][key] = str((base / value).resolve())
        return Profile.model_validate(data)


def profiles_dir(directory: Path | str | None = None) -> Path:
    """Return the directory holding profile files (the user's, else the packaged defaults)."""
    return Path(directory) if directory is not None else config_dir() / "profiles"


def available_profiles(directory: Path | str | None = None) -> list[str]:
    """Return the names of the profiles in ``directory`` (default: the packaged ones)."""
    return sorted(p.stem for p in profiles_dir(directory).glob("*.yaml"))


def load_profile(name: str = "local", directory: Path | str | None = None, base: Path | None = None) -> Profile:
    """Load a profile and resolve its relative paths against ``base`` (default: the cwd).

    ``name`` is a profile of the config directory (``local``, ``prod``) or the path of a profile file
    of the user's own (``*.yaml``), so flows can be pointed at any lake and services by one string.
    """
    path = Path(name) if name.endswith((".yaml", ".yml")) else profiles_dir(directory) / f"{name}.yaml"
    if not path.exists():
        known = ", ".join(available_profiles(directory))
        raise ConfigError(f"unknown profile {name!r} (looked for {path}); available: {known}")
    return load_yaml_model(Profile, path).resolve(base if base is not None else Path.cwd())
