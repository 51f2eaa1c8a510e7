"""Scheduled runs take their window from the lake: the next session bronze lacks, what silver lacks, what gold lacks."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from core.errors import ConfigError
from feature_store.gold import GOLD_FEATURES
from flows.ingest import catch_up_params
from flows.watermarks import featurize_window, next_session, reconcile_window
from lakehouse.run_source import run_source
from lakehouse.tables import BRONZE_TRADES, SILVER_BARS

SYMBOLS = ["SIM1:SIM", "SIM2:SIM"]
TINY = {"symbols": SYMBOLS, "session_minutes": 10, "trades_per_day": 20_000}


@pytest.mark.parametrize(
    ("calendar", "held", "scheduled", "expected"),
    [
        ("XNYS", date(2026, 1, 9), date(2026, 1, 12), date(2026, 1, 12)),  # Friday held -> Monday
        ("XNYS", date(2026, 1, 9), date(2026, 1, 11), None),  # Sunday: up to date
        ("XNYS", None, date(2026, 1, 11), date(2026, 1, 9)),  # empty lake on a Sunday: the last session
        ("XNYS", date(2026, 1, 16), date(2026, 1, 20), date(2026, 1, 20)),  # Martin Luther King Day skipped
        ("24/7", date(2026, 1, 10), date(2026, 1, 11), date(2026, 1, 11)),
        ("24/7", date(2026, 1, 11), date(2026, 1, 11), None),
    ],
)
def test_next_session(calendar, held, scheduled, expected):
    assert next_session(calendar, held, scheduled) == expected


def test_catch_up_needs_a_source_with_sessions(lake):
    with pytest.raises(ConfigError, match="catch_up"):
        catch_up_params("tabular", {"mapping": "yahoo_daily", "paths": ["x.csv"]}, lake, datetime.now(UTC))


def test_windows_follow_what_the_lake_holds(prefect_harness, lake):
    from flows.featurize import featurize
    from flows.reconcile import reconcile

    wed = datetime(2026, 1, 7, 23, 0, tzinfo=UTC)
    assert catch_up_params("simulator", TINY, lake, wed) == {**TINY, "start": "2026-01-07", "n_days": 1}
    assert reconcile_window(lake, ["1m"], SYMBOLS) is None  # nothing in bronze
    run_source(lake, "simulator", {**TINY, "start": "2026-01-07"}, lambda: wed)
    assert catch_up_params("simulator", TINY, lake, wed) is None  # bronze is up to date for Wednesday
    fri = datetime(2026, 1, 9, 15, 0, tzinfo=UTC)
    assert catch_up_params("simulator", TINY, lake, fri)["start"] == "2026-01-08"  # the next session, not Friday

    last_trade = lake.read(BRONZE_TRADES, ["ts"])["ts"].max()
    start, end = reconcile_window(lake, ["1m"], SYMBOLS)
    assert start == datetime(2026, 1, 7, tzinfo=UTC) and end >= last_trade and (end - last_trade).total_seconds() < 60
    written = reconcile(timeframes=["1m"], symbols=SYMBOLS, lake_root=lake.root, catch_up=True)
    assert written["silver.bars"] > 0
    assert reconcile_window(lake, ["1m"], SYMBOLS) is None  # silver caught up: the next run does nothing
    assert reconcile(timeframes=["1m"], symbols=SYMBOLS, lake_root=lake.root, catch_up=True) == {}

    silver_end = lake.read(SILVER_BARS, ["ts"])["ts"].max()
    assert featurize_window(lake, GOLD_FEATURES, "bar_1m_v1", "1m", SYMBOLS) == (None, silver_end)  # all of it
    kw = dict(tf="1m", feature_sets=["bar_1m_v1"], symbols=SYMBOLS, label_set=None, lake_root=lake.root, catch_up=True)
    assert featurize(**kw)["gold.features/bar_1m_v1"] > 0
    assert featurize_window(lake, GOLD_FEATURES, "bar_1m_v1", "1m", SYMBOLS) is None  # gold caught up
    assert featurize(**kw) == {}
