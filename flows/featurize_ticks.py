"""Build the tick model's gold rows for a window: per-second ``tick_v2`` features and ``ret_tick_v1`` labels.

Thin flow: for each UTC day of the window, compute ``tick_v2`` from the busiest vendor's bronze ticks
(``feature_store.tick.gold``, the same code the streaming featurizer is held to), and label every
second of the silver 1s consensus bars' span with its forward log returns at 1..600 s (SPECS buckets):
of the main source's quote mids where it sends quotes for every symbol of the window, else of the
bars' closes (trade prices); the label set's ``price`` records which.
Both writes replace their window, so re-running a day leaves gold unchanged.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pyarrow.compute as pc
from prefect import flow, get_run_logger, task

from core.errors import TableError
from core.profile import load_profile
from feature_store.featurize import label_window
from feature_store.gold import write_labels
from feature_store.labels import TICK_HORIZONS_S, tick_label_spec
from feature_store.streaming.session import main_source
from feature_store.tick.gold import build_tick_features
from lakehouse.security_master import load_instruments
from lakehouse.storage import Lake, ts_value
from lakehouse.tables import BRONZE_QUOTES, SILVER_BARS


def days_of(start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """Split ``[start, end)`` at UTC midnights (a tick session never spans two UTC days here)."""
    out, lo = [], start
    while lo < end:
        hi = min(datetime.combine(lo.date() + timedelta(days=1), datetime.min.time(), UTC), end)
        out.append((lo, hi))
        lo = hi
    return out


@task
def features_for_day(
    lake: Lake, start: datetime, end: datetime, symbols: list[str] | None, calendars: dict[str, str]
) -> int:
    """tick_v2 rows of one day from its main source's bronze ticks; 0 when the day has no trades."""
    try:
        source = main_source(lake, start, end, symbols)
    except TableError:  # a day without trades (weekend, holiday) has nothing to featurize
        return 0
    return build_tick_features(lake, source, start, end, symbols, calendar_of=calendars)


@task
def labels_for_window(
    lake: Lake, start: datetime, end: datetime, symbols: list[str] | None, tz: str = "America/New_York"
) -> int:
    """ret_tick_v1 labels of the silver 1s consensus bars with ts in ``[start, end]``."""
    flt = (pc.field("tf") == "1s") & (pc.field("adjustment") == "raw")
    flt &= (pc.field("ts") >= ts_value(start)) & (pc.field("ts") <= ts_value(end))
    if symbols:
        flt &= pc.field("symbol_id").isin(symbols)
    cols = ["symbol_id", "tf", "ts", "open", "high", "low", "close", "volume", "vwap", "known_at"]
    bars = lake.read(SILVER_BARS, columns=cols, filter=flt).sort("symbol_id", "ts")
    # a label never reaches into the next session: series are (symbol, exchange-local day)
    bars = bars.with_columns(pl.col("ts").dt.convert_time_zone(tz).dt.date().alias("day"))
    book = main_quotes(lake, start, end, symbols)
    quoted = book.height > 0 and set(bars["symbol_id"].unique()) <= set(book["symbol_id"].unique())
    spec = tick_label_spec(price="mid" if quoted else "trade")  # mid-quote returns where every symbol has quotes
    return write_labels(lake, label_window(bars, None, spec, start, end, tz, quotes=book), spec.row())


def main_quotes(lake: Lake, start: datetime, end: datetime, symbols: list[str] | None) -> pl.DataFrame:
    """The main trade source's bronze quotes over ``[start, end]`` plus the longest horizon (labels look forward)."""
    stop = end + timedelta(seconds=max(TICK_HORIZONS_S) + 1)
    try:
        source = main_source(lake, start, stop, symbols)
    except TableError:
        return pl.DataFrame()
    flt = (pc.field("source") == source) & (pc.field("ts") >= ts_value(start)) & (pc.field("ts") <= ts_value(stop))
    if symbols:
        flt &= pc.field("symbol_id").isin(symbols)
    return lake.read(BRONZE_QUOTES, columns=["symbol_id", "ts", "bid", "ask", "seq"], filter=flt)


@flow(name="featurize-ticks")
def featurize_ticks(
    start: datetime,
    end: datetime,
    symbols: list[str] | None = None,
    lake_root: str | None = None,
    profile: str = "local",
) -> dict[str, int]:
    """Write tick_v2 features and ret_tick_v1 labels for ``[start, end)``; return rows written per table."""
    logger = get_run_logger()
    lake = Lake.from_profile(load_profile(profile), root=lake_root)
    calendars = {i.symbol_id: i.calendar for i in load_instruments()}
    features = sum(features_for_day(lake, lo, hi, symbols, calendars) for lo, hi in days_of(start, end))
    labels = labels_for_window(lake, start, end, symbols)
    logger.info("tick features: %d rows, labels: %d rows for [%s, %s)", features, labels, start, end)
    return {"gold.features/tick_v2": features, "gold.labels/ret_tick_v1": labels}
