"""Find config and contract files without the repository's path.

The packaged defaults ship inside the distribution as the ``configs`` and ``contracts`` packages
and are found through ``importlib.resources`` (so an installed wheel works anywhere). A user's own
config directory, passed in or named by the profile, takes precedence over the defaults.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from core.errors import ConfigError


def packaged(package: str) -> Path:
    """Return the directory of a data package shipped with MPS (``configs`` or ``contracts``)."""
    try:
        root = files(package)
    except ModuleNotFoundError as exc:
        raise ConfigError(f"packaged resources {package!r} are missing from this installation") from exc
    return Path(str(root))


def config_dir(override: Path | str | None = None) -> Path:
    """Return the config directory: ``override`` when given, else the packaged defaults."""
    if override is None:
        return packaged("configs")
    path = Path(override)
    if not path.is_dir():
        raise ConfigError(f"config directory {path} does not exist")
    return path


def contracts_dir() -> Path:
    """Return the directory of the cross-language contracts (schemas, subjects, golden vectors)."""
    return packaged("contracts")


def config_file(*parts: str, directory: Path | str | None = None) -> Path:
    """Return ``<config dir>/<parts...>``, preferring ``directory`` and falling back to the defaults."""
    if directory is not None:
        candidate = config_dir(directory).joinpath(*parts)
        if candidate.exists():
            return candidate
    return config_dir().joinpath(*parts)
