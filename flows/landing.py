"""Ingest files vendors dropped into the landing zone; move each to processed/ or rejected/.

Started by the ``vendor-file`` webhook (the API emits ``mps.webhook.vendor-file``; the deployment
trigger in ``deployments/`` passes the event's ``key``) or on a schedule with no key (then every
pending file is settled). Thin: the landing zone (lakehouse.landing) moves files, the ingest engine
(lakehouse.run_source) writes bronze; each file is one task.
"""

from __future__ import annotations

from datetime import datetime

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from flows.ingest import clock_for, lake_for
from lakehouse.landing import LandingZone, settle
from lakehouse.run_source import run_source


def account_of(report) -> dict:
    """The account of one file's ingest as a plain dict."""
    return {
        **{k: report.total(k) for k in ("rows_read", "rows_written", "duplicates", "quarantined")},
        "balanced": report.balanced,
        "failures": [{"file": f.file, "message": f.message} for f in report.failures],
    }


@task(name="settle-file", task_run_name="{key}", cache_policy=NO_CACHE)
def settle_file(zone: LandingZone, key: str, params: dict, lake, clock) -> dict:
    def ingest(source: str, path: str) -> dict:
        return account_of(run_source(lake, source, {**params.get(source, {}), "paths": [path]}, clock))

    return settle(zone, key, ingest)


@flow(name="landing")
def landing(
    endpoint: str,
    bucket: str = "mps-landing",
    key: str | None = None,
    params: dict | None = None,
    secure: bool = False,
    profile: str = "local",
    lake_root: str | None = None,
    as_of: datetime | None = None,
) -> dict:
    """Settle ``key`` (or every pending file) from ``s3://bucket/landing/``; ``params[source]`` are
    the adapter's parameters besides ``paths`` (e.g. ``{"tabular": {"mapping": "yahoo_daily"}}``)."""
    logger = get_run_logger()
    zone = LandingZone(endpoint, bucket, secure)
    lake, clock = lake_for(profile, lake_root), clock_for(as_of)
    keys = [key] if key else zone.pending()
    accounts = [settle_file(zone, k, params or {}, lake, clock) for k in keys]
    for a in accounts:
        logger.info("%s -> %s: %s", a["key"], a["settled_to"], a.get("error") or f"{a.get('rows_written', 0)} written")
    return {
        "files": len(accounts),
        "processed": sum(a["settled_to"].startswith("processed/") for a in accounts),
        "rejected": sum(a["settled_to"].startswith("rejected/") for a in accounts),
        "accounts": accounts,
    }
