"""Where the lake stands: the windows a scheduled run has new data for.

A cron deployment runs with its parameters defaulted (the Prefect UI's Run button, a schedule), so
its window comes from the lake, not from the wall clock: ingest takes the next session after the
last one bronze holds (never past the run's scheduled date), reconcile the span from silver's last
bar to bronze's last observation, featurize the span from gold's last row to silver's last bar.
High-water marks come from the Delta log's file statistics where they can (``Lake.latest``), so a
scheduled run does not scan history. Every window is re-runnable: the writers replace it.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import polars as pl

from core.timetypes import DAY_NS, tf_ns
from lakehouse.schema import TableSpec
from lakehouse.storage import Lake, ts_value
from lakehouse.tables import BRONZE_BARS, BRONZE_QUOTES, BRONZE_TRADES, SILVER_BARS

BRONZE_OBSERVATIONS = (BRONZE_TRADES, BRONZE_QUOTES, BRONZE_BARS)
FAR_FUTURE = datetime(2200, 1, 1, tzinfo=UTC)


def scheduled_start() -> datetime:
    """The flow run's scheduled start (the wall clock for an ad hoc run outside Prefect), in UTC."""
    from prefect.runtime import flow_run

    return datetime.fromtimestamp(flow_run.scheduled_start_time.timestamp(), tz=UTC)


def high_water(
    lake: Lake, spec: TableSpec, keep: dict[str, list[str] | None] | None = None, upto: datetime = FAR_FUTURE
) -> datetime | None:
    """The largest ``ts`` of ``spec`` among rows whose columns take the values in ``keep`` (None: any)."""
    wanted: dict[str, list[str]] = {k: v for k, v in (keep or {}).items() if v}
    by = ["symbol_id", *(k for k in wanted if k != "symbol_id")]
    latest = lake.latest(spec, by, ts_value(upto))
    for column, values in wanted.items():
        latest = latest.filter(pl.col(column).is_in(values))
    value = latest.get_column("ts").max() if latest.height else None
    return value if isinstance(value, datetime) else None


def low_water(lake: Lake, spec: TableSpec) -> datetime | None:
    """The smallest ``ts`` of ``spec`` from the Delta log's file statistics (a lower bound)."""
    import pyarrow as pa

    dt = lake.delta(spec)
    if dt is None:
        return None
    files = pl.DataFrame(pa.table(dt.get_add_actions(flatten=True)))
    if "min.ts" not in files.columns or files.height == 0:
        return None
    low = files.get_column("min.ts").cast(pl.Int64).min()
    return datetime.fromtimestamp(int(low) / 1e9, tz=UTC) if low is not None else None  # type: ignore[arg-type]


def bronze_high_water(lake: Lake, symbols: list[str] | None, source: str | None = None) -> datetime | None:
    """The last observation (trade, quote or vendor bar) of ``symbols`` in bronze, from ``source`` if given."""
    keep = {"symbol_id": symbols, "source": [source] if source else None}
    marks = [m for spec in BRONZE_OBSERVATIONS if (m := high_water(lake, spec, keep)) is not None]
    return max(marks) if marks else None


def local_date(calendar: str, t: datetime) -> date:
    """The date of ``t`` on ``calendar``'s clock (UTC for 24/7)."""
    if calendar == "24/7":
        return t.astimezone(UTC).date()
    import exchange_calendars as xcals

    return t.astimezone(xcals.get_calendar(calendar).tz).date()


def next_session(calendar: str, last_held: date | None, scheduled: date) -> date | None:
    """The session to ingest: the first after ``last_held`` (or the last on or before ``scheduled`` when
    nothing is held), provided it is not after ``scheduled``; None when bronze is up to date."""
    if calendar == "24/7":
        day = last_held + timedelta(days=1) if last_held else scheduled
        return day if day <= scheduled else None
    import exchange_calendars as xcals

    cal = xcals.get_calendar(calendar)
    if last_held is None:
        found = cal.sessions_in_range(scheduled - timedelta(days=14), scheduled)
        return found[-1].date() if len(found) else None
    found = cal.sessions_in_range(last_held + timedelta(days=1), scheduled)
    return found[0].date() if len(found) else None


def reconcile_window(
    lake: Lake, timeframes: list[str], symbols: list[str] | None, max_days: int = 7
) -> tuple[datetime, datetime] | None:
    """(start, end] with bronze data silver has not reconciled yet; None when silver is up to date.

    A timeframe is behind when its last raw silver bar ends a bar (at least a minute) or more before
    bronze's last observation. ``start`` is the earliest last bar of the timeframes behind
    (re-reconciling the overlap is idempotent), or the day of bronze's first observation when one
    has no silver yet; ``end`` is bronze's last observation rounded up to the minute, at most
    ``max_days`` after ``start`` (a long backlog is taken a week per run).
    """
    last = bronze_high_water(lake, symbols)
    if last is None:
        return None
    behind: list[datetime | None] = []
    for tf in timeframes:
        mark = high_water(lake, SILVER_BARS, {"symbol_id": symbols, "tf": [tf], "adjustment": ["raw"]})
        bar = timedelta(microseconds=(tf_ns(tf) or DAY_NS) // 1000)
        if mark is None or mark <= last - max(bar, timedelta(minutes=1)):
            behind.append(mark)
    if not behind:
        return None
    if all(m is not None for m in behind):
        start = min(m for m in behind if m is not None)
    else:
        first = min((m for spec in BRONZE_OBSERVATIONS if (m := low_water(lake, spec)) is not None), default=last)
        start = datetime.combine(first.date(), datetime.min.time(), UTC)
    end = min(_ceil_minute(last), start + timedelta(days=max_days))
    return (start, end) if end > start else None


def featurize_window(
    lake: Lake, features: TableSpec, feature_set: str, tf: str, symbols: list[str] | None
) -> tuple[datetime | None, datetime] | None:
    """[start, end] of silver ``tf`` bars that gold ``feature_set`` has not featurized yet (start None: all
    history); None when gold is up to date or silver has no bars."""
    end = high_water(lake, SILVER_BARS, {"symbol_id": symbols, "tf": [tf], "adjustment": ["raw"]})
    if end is None:
        return None
    # a feature set is declared for one tf (flows.featurize refuses others), so its name picks the rows
    start = high_water(lake, features, {"symbol_id": symbols, "feature_set": [feature_set]})
    return None if start is not None and start >= end else (start, end)


def _ceil_minute(t: datetime) -> datetime:
    floored = t.replace(second=0, microsecond=0)
    return floored if floored == t else floored + timedelta(minutes=1)


def feature_days(lake: Lake, feature_set: str, symbols: list[str] | None = None) -> int:
    """How many UTC dates gold holds rows of ``feature_set`` for (any of ``symbols``, or any symbol)."""
    import pyarrow.compute as pc

    from feature_store.gold import GOLD_FEATURES

    keep = pc.field("feature_set") == feature_set
    if symbols:
        keep = keep & pc.field("symbol_id").isin(symbols)
    ts = lake.read(GOLD_FEATURES, ["ts"], keep).get_column("ts")
    return ts.dt.date().n_unique() if len(ts) else 0
