"""MPS application shell: settings and profiles, the `mps` CLI, the service launcher, the HTTP API."""

from core.errors import ConfigError, ContractError, MpsError, ServiceError, SourceError, TableError

__all__ = ["MpsError", "ConfigError", "SourceError", "TableError", "ContractError", "ServiceError"]
