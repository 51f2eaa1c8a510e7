"""The strict config base and YAML loading with errors that name the file and key path."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from core.errors import ConfigError


class Strict(BaseModel):
    """Base for config models: frozen, and unknown fields are rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)


M = TypeVar("M", bound=BaseModel)


def format_validation_error(source: str, exc: ValidationError) -> str:
    """Turn a pydantic error into one line per bad key, each naming its dotted path."""
    lines = []
    for err in exc.errors():
        path = ".".join(str(p) for p in err["loc"]) or "<root>"
        lines.append(f"{source}: {path}: {err['msg']}")
    return "\n".join(lines)


def read_yaml_mapping(path: Path) -> dict[str, object]:
    """Read ``path`` as a YAML mapping; a missing file, bad YAML or a non-mapping is a ConfigError."""
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: file not found") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return raw


def validate_model(model: type[M], raw: object, source: str) -> M:
    """Validate ``raw`` against ``model``; errors name ``source`` and the key path."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(source, exc)) from exc


def load_yaml_model(model: type[M], path: Path) -> M:
    """Load ``path`` as YAML and validate it against ``model``; errors name the file and key."""
    return validate_model(model, read_yaml_mapping(path), str(path))
