"""The landing zone: vendors drop files into an object-store bucket; ingest settles each one.

Layout of the bucket (``minio`` SDK; MinIO in production, moto's S3 server in tests)::

    landing/<source>/<file>          what vendors deliver (the first folder names the source)
    processed/<source>/<file>        ingested; <file>.account.json beside it holds the account
    rejected/<source>/<file>         could not be ingested; <file>.account.json says why

A file is downloaded under its own name (adapters read symbols from file names), ingested with
``lakehouse.run_source``, then moved (copy + delete) with its account, so re-running on the same
key is a no-op and nothing is left half-settled silently.
"""

from __future__ import annotations

import io
import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from core.errors import ConfigError, MpsError, SourceError

LANDING, PROCESSED, REJECTED = "landing/", "processed/", "rejected/"


@dataclass(frozen=True)
class LandingZone:
    """A bucket on an S3 endpoint (``host:port``); credentials from the standard AWS variables."""

    endpoint: str
    bucket: str
    secure: bool = False
    region: str = "us-east-1"
    access_key: str | None = field(default=None, repr=False)
    secret_key: str | None = field(default=None, repr=False)

    def client(self):
        """A ``minio.Minio`` client (explicit keys, else AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)."""
        from minio import Minio
        from minio.credentials import EnvAWSProvider

        endpoint = self.endpoint.split("://", 1)[-1].rstrip("/")
        if self.access_key:
            return Minio(endpoint, self.access_key, self.secret_key, secure=self.secure, region=self.region)
        return Minio(endpoint, credentials=EnvAWSProvider(), secure=self.secure, region=self.region)

    def pending(self) -> list[str]:
        """Keys waiting under ``landing/`` (account files excluded), in name order."""
        objs = self.client().list_objects(self.bucket, prefix=LANDING, recursive=True)
        return sorted(o.object_name for o in objs if not o.object_name.endswith(".account.json"))


def source_of(key: str) -> str:
    """The source a landing key names: ``landing/<source>/...``."""
    parts = PurePosixPath(key).parts
    if len(parts) < 3 or parts[0] != LANDING.rstrip("/"):
        raise ConfigError(f"landing key {key!r}: expected landing/<source>/<file>")
    return parts[1]


def settle(zone: LandingZone, key: str, ingest) -> dict:
    """Download ``key``, call ``ingest(source, local_path)`` -> account dict, move the file; return the account.

    ``ingest`` raises MpsError for a file that cannot be read; the file then goes to ``rejected/``
    with the message. An account with failures also goes to ``rejected/``.
    """
    from minio.commonconfig import CopySource
    from minio.error import S3Error

    client = zone.client()
    source = source_of(key)
    with tempfile.TemporaryDirectory(prefix="mps-landing-") as tmp:
        local = Path(tmp) / PurePosixPath(key).name
        try:
            client.fget_object(zone.bucket, key, str(local))
        except S3Error as exc:
            if exc.code != "NoSuchKey":
                raise SourceError(f"landing s3://{zone.bucket}/{key}: {exc.code} {exc.message}") from None
            return _already_settled(client, zone.bucket, key)
        try:
            account = {"key": key, "source": source, **ingest(source, str(local))}
            ok = not account.get("failures") and account.get("balanced", True)
        except MpsError as exc:
            account, ok = {"key": key, "source": source, "error": str(exc)}, False
    dest = (PROCESSED if ok else REJECTED) + key.removeprefix(LANDING)
    account["settled_to"] = dest
    try:
        client.copy_object(zone.bucket, dest, CopySource(zone.bucket, key))
    except S3Error as exc:
        if exc.code != "NoSuchKey":
            raise SourceError(f"landing s3://{zone.bucket}/{key}: {exc.code} {exc.message}") from None
        # a concurrent run (the same event delivered twice) settled it between our download and now;
        # the ingest above was idempotent, so its account is the one that counts
        return _already_settled(client, zone.bucket, key)
    body = json.dumps(account, indent=2, default=str).encode()
    client.put_object(zone.bucket, dest + ".account.json", io.BytesIO(body), len(body), "application/json")
    client.remove_object(zone.bucket, key)
    return account


def _already_settled(client, bucket: str, key: str) -> dict:
    """The account of a key that another run settled already (a duplicate event); SourceError if none."""
    from minio.error import S3Error

    for folder in (PROCESSED, REJECTED):
        dest = folder + key.removeprefix(LANDING)
        try:
            account = json.loads(client.get_object(bucket, dest + ".account.json").read())
        except S3Error:
            continue
        return {**account, "duplicate": True}
    raise SourceError(f"landing s3://{bucket}/{key}: no such file, and it was never settled")
