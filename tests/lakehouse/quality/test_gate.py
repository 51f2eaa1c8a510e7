"""The gate on synthetic silver bars: each violation is quarantined under the expectation that caught it."""

from __future__ import annotations

import json

import polars as pl
import pytest

from lakehouse.quality import gate
from lakehouse.tables import BRONZE_QUARANTINE, SILVER_BARS, SILVER_QUALITY_RESULTS

PAIR = "expect_column_pair_values_a_to_be_greater_than_b"
BETWEEN = "expect_column_values_to_be_between"
UNIQUE = "expect_compound_columns_to_be_unique"


def _set(df: pl.DataFrame, row: int, **values) -> pl.DataFrame:
    idx = pl.int_range(pl.len()) == row
    return df.with_columns(pl.when(idx).then(pl.lit(v)).otherwise(pl.col(k)).alias(k) for k, v in values.items())


def _quarantined(lake, run_id: str) -> pl.DataFrame:
    q = lake.read(BRONZE_QUARANTINE)
    return q.filter(pl.col("batch_id") == run_id).sort("row", "reason")


def test_clean_bars_pass_and_results_are_persisted(lake, clock, make_bars):
    bars = make_bars(500)
    passed, result = gate(lake, SILVER_BARS, bars, "run-clean", clock)
    assert result.success and passed.height == 500 and result.rows_quarantined == 0
    results = lake.read(SILVER_QUALITY_RESULTS)
    assert results.height == len(result.outcomes) and results.get_column("success").all()
    assert set(results.get_column("run_id")) == {"run-clean"}
    assert not lake.exists(BRONZE_QUARANTINE) or _quarantined(lake, "run-clean").height == 0


@pytest.mark.parametrize(
    ("row", "change", "reason"),
    [
        (10, {"high": 50.0}, f"expectation {PAIR} failed on high,low"),
        (11, {"close": 1000.0, "high": 100.0}, f"expectation {PAIR} failed on high,close"),
        (12, {"open": 10.0}, f"expectation {PAIR} failed on open,low"),
        (13, {"volume": -5.0}, f"expectation {BETWEEN} failed on volume"),
        (150, {"volume": 5e6}, f"expectation {BETWEEN} failed on _volume_excess"),  # 500x the usual minute
    ],
)
def test_each_violation_is_quarantined_with_its_expectation(lake, clock, make_bars, row, change, reason):
    bars = _set(make_bars(300), row, **change)
    passed, result = gate(lake, SILVER_BARS, bars, "run-1", clock)
    q = _quarantined(lake, "run-1")
    assert reason in q.filter(pl.col("row") == row + 1).get_column("reason").to_list()
    assert set(q.get_column("row")) == {row + 1}
    assert q.get_column("source").unique().to_list() == ["quality"]
    assert q.get_column("table").unique().to_list() == ["silver.bars"]
    raw = json.loads(q.get_column("raw")[0])
    assert raw["ts"] and raw["symbol_id"] == "AAPL:US"
    # the run goes on: every other row is returned for writing
    assert passed.height == 299 and passed.columns == bars.columns
    assert result.rows_quarantined == 1 and not result.success


def test_duplicate_keys_and_time_going_backwards(lake, clock, make_bars):
    bars = make_bars(200)
    dup = bars.slice(50, 1)
    back = bars.slice(20, 1).with_columns(pl.col("ts").dt.offset_by("-30s"))  # earlier than the row before it
    batch = pl.concat([bars.slice(0, 100), dup, back, bars.slice(100, 100)])
    passed, result = gate(lake, SILVER_BARS, batch, "run-2", clock)
    q = _quarantined(lake, "run-2")
    by_reason = q.group_by("reason").agg(pl.col("row").sort()).sort("reason")
    reasons = dict(zip(by_reason["reason"], by_reason["row"].to_list()))
    assert reasons[f"expectation {UNIQUE} failed on symbol_id,tf,adjustment,ts"] == [51, 101]
    assert 102 in reasons[f"expectation {BETWEEN} failed on _ts_step_ns"]
    assert 101 in reasons[f"expectation {BETWEEN} failed on _ts_step_ns"]
    assert passed.height == batch.height - q.get_column("row").n_unique()
    failing = set(result.failures)
    assert f"{UNIQUE}:symbol_id,tf,adjustment,ts" in failing and f"{BETWEEN}:_ts_step_ns" in failing


def test_a_price_spike_is_caught_relative_to_recent_volatility(lake, clock, make_bars):
    bars = _set(make_bars(300), 200, high=104.0)  # a 4% wick on 0.05% minute volatility
    bars = bars.with_columns(pl.max_horizontal("high", "open", "close").alias("high"))
    passed, result = gate(lake, SILVER_BARS, bars, "run-3", clock)
    q = _quarantined(lake, "run-3")
    assert q.get_column("row").to_list() == [201]
    assert q.get_column("reason").to_list() == [f"expectation {BETWEEN} failed on _jump_z"]


def test_rerunning_the_same_batch_changes_nothing(lake, clock, make_bars):
    bars = _set(make_bars(100), 5, volume=-1.0)
    gate(lake, SILVER_BARS, bars, "run-4", clock)
    q1, r1 = lake.read(BRONZE_QUARANTINE), lake.read(SILVER_QUALITY_RESULTS).sort("expectation")
    gate(lake, SILVER_BARS, bars, "run-4", clock)
    q2, r2 = lake.read(BRONZE_QUARANTINE), lake.read(SILVER_QUALITY_RESULTS).sort("expectation")
    assert q1.height == q2.height == 1
    assert r1.equals(r2)


def test_history_warms_up_the_rolling_baselines(lake, clock, make_bars):
    bars = make_bars(400)
    spike = _set(bars.slice(300, 100), 1, high=103.0).with_columns(pl.max_horizontal("high", "close").alias("high"))
    _, without = gate(lake, SILVER_BARS, spike.head(5), "run-5a", clock)
    _, with_history = gate(lake, SILVER_BARS, spike, "run-5b", clock, history=bars.slice(0, 300))
    assert with_history.failures == {f"{BETWEEN}:_jump_z": 1}
    assert with_history.rows_in == 100  # history is context, never validated or returned
