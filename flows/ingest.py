"""Ingest one source into bronze.

Thin flow: validate the source's parameters through the registry (a typo fails the run before any
I/O), build the lake from the profile (or an explicit root), write the security master batch to
bronze.security_master, then run the ingest engine on the adapter's batches, one task per batch,
with the declared instruments as the known symbols. Each account line is logged; the flow returns
the totals and the failures. Batches are pulled one at a time, so stateful sources (sql) advance
their watermark only after the previous batch is written.

``catch_up`` (what the scheduled deployment runs) is for sources that simulate or fetch by session
(a ``start`` date and ``n_days``: the simulator): the run ingests the next session after the last
one bronze holds for the symbols, never past the run's scheduled date, and nothing when bronze is
up to date (``flows.watermarks``).
"""

from __future__ import annotations

from datetime import UTC, datetime

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from core.clock import utc_clock
from core.errors import ConfigError
from core.profile import load_profile
from flows.watermarks import bronze_high_water, local_date, next_session, scheduled_start
from lakehouse.ingest import Batch, Clock, Ingestor, IngestReport
from lakehouse.run_source import source_batches, sync_security_master
from lakehouse.security_master import instrument_rules, known_symbols
from lakehouse.sources.registry import parse_params
from lakehouse.storage import Lake


def lake_for(profile: str, lake_root: str | None = None) -> Lake:
    """The profile's lake, or ``lake_root`` with the profile's storage options."""
    lake = Lake.from_profile(load_profile(profile))
    return Lake(lake_root, lake.storage_options) if lake_root else lake


def clock_for(as_of: datetime | None) -> Clock:
    """A fixed clock at ``as_of`` (naive means UTC), or the wall clock when none is given."""
    if as_of is None:
        return utc_clock
    fixed = as_of if as_of.tzinfo else as_of.replace(tzinfo=UTC)
    return lambda: fixed


def summary(source: str, lake: Lake, report: IngestReport, master: IngestReport) -> dict:
    """Totals of the source's batches plus the failures, as a plain dict."""
    return {
        "source": source,
        "lake": lake.root,
        "batches": len({a.batch_id for a in report.accounts}) + len(report.failures),
        **{k: report.total(k) for k in ("rows_read", "rows_written", "duplicates", "quarantined")},
        "balanced": report.balanced,
        "security_master_written": master.total("rows_written"),
        "failures": [{"file": f.file, "message": f.message} for f in report.failures + master.failures],
    }


@task(name="security-master", cache_policy=NO_CACHE)
def write_security_master(lake: Lake, clock: Clock) -> IngestReport:
    return sync_security_master(lake, clock)


@task(name="ingest-batch", task_run_name="{batch.file}", cache_policy=NO_CACHE)
def ingest_batch(ingestor: Ingestor, batch: Batch) -> IngestReport:
    return ingestor.run([batch])


def catch_up_params(source: str, params: dict, lake: Lake, scheduled: datetime) -> dict | None:
    """``params`` with ``start``/``n_days`` set to the next session bronze lacks (not after the date of
    ``scheduled``); None when bronze is up to date."""
    parsed = parse_params(source, params)
    if not hasattr(parsed, "start") or not hasattr(parsed, "n_days"):
        raise ConfigError(f"ingest {source}: catch_up needs a source with start/n_days parameters (the simulator)")
    calendar = str(getattr(parsed, "session", "XNYS"))
    symbols = list(getattr(parsed, "symbols", []) or []) or None
    last = bronze_high_water(lake, symbols)
    held = local_date(calendar, last) if last is not None else None
    day = next_session(calendar, held, local_date(calendar, scheduled))
    return None if day is None else {**params, "start": day.isoformat(), "n_days": 1}


@flow(name="ingest")
def ingest(
    source: str = "simulator",
    params: dict | None = None,
    profile: str = "local",
    as_of: datetime | None = None,
    lake_root: str | None = None,
    catch_up: bool = False,
) -> dict:
    """Ingest everything ``source`` yields for ``params`` into bronze; return totals and failures.

    With ``catch_up``, ingest only the next session bronze lacks (up to the run's scheduled date).
    """
    logger = get_run_logger()
    lake, clock = lake_for(profile, lake_root), clock_for(as_of)
    params = dict(params or {})
    if catch_up:
        caught = catch_up_params(source, params, lake, scheduled_start())
        if caught is None:
            logger.info("%s: bronze holds every session up to the scheduled date; nothing to ingest", source)
            return {"source": source, "lake": lake.root, "batches": 0, "up_to_date": True, "failures": []}
        logger.info("%s: catching up session %s", source, caught["start"])
        params = caught
    parsed = parse_params(source, params)
    master = write_security_master(lake, clock)
    ingestor = Ingestor(lake, clock, known_symbols(lake=lake), instruments=instrument_rules())
    report = IngestReport()
    for batch in source_batches(lake, source, parsed, clock):
        part = ingest_batch(ingestor, batch)
        for line in part.lines():
            (logger.warning if line.startswith("FAILED") else logger.info)(line)
        report.merge(part)
    result = summary(source, lake, report, master)
    logger.info(
        "%s: read %s = written %s + duplicates %s + quarantined %s; %d failures",
        source,
        f"{result['rows_read']:,}",
        f"{result['rows_written']:,}",
        f"{result['duplicates']:,}",
        f"{result['quarantined']:,}",
        len(result["failures"]),
    )
    return result
