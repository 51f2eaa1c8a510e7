"""Nightly table upkeep: compact, checkpoint and vacuum every table of the lake.

Thin flow: build the lake from the profile (or an explicit root), run ``lakehouse.maintain`` over
every declared table, log one line per table, return the lines and the failures.
"""

from __future__ import annotations

from datetime import timedelta

from prefect import flow, get_run_logger

from flows.ingest import lake_for
from lakehouse.maintain import maintain as maintain_tables
from lakehouse.tables import TABLES


@flow(name="maintain")
def maintain(profile: str = "local", retention_hours: int = 168, lake_root: str | None = None) -> dict:
    """Maintain every table, keeping ``retention_hours`` of time travel; return per-table lines and failures."""
    logger = get_run_logger()
    done, failed = maintain_tables(lake_for(profile, lake_root), TABLES.values(), timedelta(hours=retention_hours))
    for upkeep in done:
        logger.info(upkeep.line())
    for message in failed:
        logger.warning(message)
    return {"tables": [u.line() for u in done], "failures": failed}
