"""Every silver table with a suite: expectations read real columns, and violations are caught."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
import pytest

from core.errors import TableError
from lakehouse.quality import DEFAULT_RULES, gate
from lakehouse.quality.suites import SUITES, columns, suite_for
from lakehouse.tables import BRONZE_QUARANTINE, SILVER_CONTINUOUS, SILVER_VENDOR_STATS, table

T0 = datetime(2024, 1, 8, 15, tzinfo=UTC)


@pytest.mark.parametrize("name", sorted(SUITES))
def test_suites_read_declared_or_derived_columns(name):
    suite = SUITES[name]
    declared = set(table(name).column_names)
    for e in suite.expectations(DEFAULT_RULES):
        for c in columns(e):
            assert c in declared or c.startswith("_"), (name, c)


def test_a_table_without_suite_is_an_error():
    with pytest.raises(TableError, match="no quality suite for bronze.trades"):
        suite_for(table("bronze.trades"))


def test_vendor_stats_bounds(lake, clock):
    stats = pl.DataFrame(
        {
            "source": ["a", "b"],
            "symbol_id": ["SIM1:SIM"] * 2,
            "window_start": [T0] * 2,
            "window_end": [T0.replace(hour=16)] * 2,
            "latency_ms": [12.0, 30.0],
            "uptime": [0.99, 1.2],
            "reliability": [0.9, 0.8],
            "outlier_rate": [0.01, 0.0],
            "n_obs": [100, 100],
            "known_at": [T0] * 2,
        },
        schema_overrides={
            "window_start": pl.Datetime("ns", "UTC"),
            "window_end": pl.Datetime("ns", "UTC"),
            "known_at": pl.Datetime("ns", "UTC"),
        },
    )
    passed, result = gate(lake, SILVER_VENDOR_STATS, stats, "vs-1", clock)
    assert passed.get_column("source").to_list() == ["a"]
    assert lake.read(BRONZE_QUARANTINE).get_column("reason").to_list() == [
        "expectation expect_column_values_to_be_between failed on uptime"
    ]


def test_continuous_futures_allow_negative_panama_prices_but_not_broken_bars(lake, clock):
    n = 6
    ts = pl.datetime_range(T0, T0.replace(hour=15, minute=n - 1), "1m", eager=True).cast(pl.Datetime("ns", "UTC"))
    cont = pl.DataFrame(
        {
            "symbol_id": "ES:CME",
            "tf": "1m",
            "ts": ts,
            "method": "panama",
            "roll_rule": "volume",
            "contract": ["ESZ13:CME"] * 3 + [None, "ESH14:CME", "ESH14:CME"],
            "roll": [False] * 4 + [True, False],
            "open": [-5.0, -4.0, -3.0, -2.0, -1.0, 0.5],
            "high": [-4.0, -3.0, -2.0, -1.0, 0.0, 1.0],
            "low": [-6.0, -5.0, -4.0, -3.0, -2.0, 0.0],
            "close": [-4.5, -3.5, -2.5, -1.5, -0.5, 2.0],
            "volume": 10.0,
            "adjust": -1.0,
        }
    ).with_columns(pl.col("ts").alias("known_at"))
    passed, _ = gate(lake, SILVER_CONTINUOUS, cont, "cf-1", clock)
    reasons = lake.read(BRONZE_QUARANTINE).sort("row").select("row", "reason").rows()
    assert reasons == [
        (4, "expectation expect_column_values_to_not_be_null failed on contract"),
        (6, "expectation expect_column_pair_values_a_to_be_greater_than_b failed on high,close"),
    ]
    assert passed.height == 4
