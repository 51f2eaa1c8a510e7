"""One exception hierarchy for the whole platform.

Every failure a user can act on is an ``MpsError``; the subclass says which part failed and the
message says what to do (which file, row, field or key was wrong).
"""


class MpsError(Exception):
    """Base of every error MPS raises on purpose."""


class ConfigError(MpsError):
    """A profile, strategy or mapping file is invalid (the message names the key path)."""


class SourceError(MpsError):
    """A source file or database could not be read at all (the message names it)."""


class TableError(MpsError):
    """A table declaration, read or write is inconsistent."""


class ContractError(MpsError):
    """A cross-language contract (message, model metadata, golden vectors) is violated."""


class ServiceError(MpsError):
    """A service (NATS, Prefect, PostgreSQL, S3) could not be started or reached."""
