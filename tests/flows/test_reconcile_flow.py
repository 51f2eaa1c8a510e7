"""The reconcile flow over simulated vendors: gated raw bars, adjusted bars, freshness, idempotent re-runs."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import polars as pl
import pytest

from core.errors import ConfigError
from flows.reconcile import reconcile
from lakehouse.ingest import Batch, Chunk, Ingestor
from lakehouse.reconcile.window import resolve_window
from lakehouse.sources import simulator
from lakehouse.sources.sim_config import SimParams
from lakehouse.tables import (
    BRONZE_CORPORATE_ACTIONS,
    BRONZE_QUARANTINE,
    BRONZE_TRADES,
    SILVER_BARS,
    SILVER_CLOCK_OFFSETS,
    SILVER_FRESHNESS,
    SILVER_QUALITY_RESULTS,
    SILVER_VENDOR_STATS,
)

UTC = UTC
START, END = datetime(2026, 1, 5, tzinfo=UTC), datetime(2026, 1, 6, tzinfo=UTC)
SPLIT_KNOWN = datetime(2026, 1, 5, 21, 0, tzinfo=UTC)  # the close before the ex-date
HUGE_MINUTE = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)  # bar (14:59, 15:00]: every vendor prints 2e11 shares
TABLES = (
    SILVER_BARS,
    SILVER_VENDOR_STATS,
    SILVER_CLOCK_OFFSETS,
    SILVER_FRESHNESS,
    SILVER_QUALITY_RESULTS,
    BRONZE_QUARANTINE,
)


def _extra_batches() -> list[Batch]:
    """A 2:1 split of SIM1 (ex-date the next session) and one absurd print per vendor in one minute."""
    action = pl.DataFrame(
        {
            "symbol_id": ["SIM1:SIM"],
            "ex_date": [date(2026, 1, 6)],
            "kind": ["split"],
            "ratio": [2.0],
            "amount": [None],
            "price_factor": [None],
            "split_factor": [None],
            "known_at": [SPLIT_KNOWN],
        },
        schema_overrides={"amount": pl.Float64, "price_factor": pl.Float64, "split_factor": pl.Float64},
    )
    out = [
        Batch(
            "test-actions",
            "actions",
            "test-actions-1",
            [Chunk(BRONZE_CORPORATE_ACTIONS, action.with_columns(pl.col("known_at").dt.cast_time_unit("ns")))],
        )
    ]
    for vendor in ("sim-a", "sim-b", "sim-c"):
        trade = pl.DataFrame(
            {
                "ts": [HUGE_MINUTE - timedelta(seconds=30)],
                "symbol_id": ["SIM1:SIM"],
                "price": [100.0],
                "size": [2e11],
                "side": [None],
                "exchange": ["SIMX"],
                "conditions": [None],
                "seq": [99],
                "source": [vendor],
            },
            schema_overrides={"side": pl.Int8, "conditions": pl.String},
        ).with_columns(pl.col("ts").dt.cast_time_unit("ns"))
        out.append(Batch(vendor, "huge", f"test-huge-{vendor}", [Chunk(BRONZE_TRADES, trade)]))
    return out


@pytest.fixture
def sim_lake(lake, clock):
    params = SimParams(
        symbols=["SIM1:SIM"],
        n_days=1,
        session_minutes=90,
        trades_per_day=20_000,
        start=date(2026, 1, 5),
        tables=["trades", "sim_truth", "sim_events"],
    )
    ingestor = Ingestor(lake, clock)
    assert ingestor.run(simulator.batches(params, clock)).balanced
    assert ingestor.run(_extra_batches()).balanced
    return lake


def _snapshot(lake) -> dict[str, pl.DataFrame]:
    return {spec.qualified: lake.read(spec).sort(pl.all()) for spec in TABLES if lake.exists(spec)}


def test_reconcile_window_gates_adjusts_and_is_idempotent(prefect_harness, sim_lake):
    lake = sim_lake
    first = reconcile(START, END, ["1m", "1h"], lake_root=lake.root)
    bars = lake.read(SILVER_BARS)
    raw, adjusted = bars.filter(pl.col("adjustment") == "raw"), bars.filter(pl.col("adjustment") == "adjusted")
    assert first["silver.bars"] == raw.height and first["silver.bars.adjusted"] == adjusted.height == raw.height
    # 90 simulated minutes (latency can push the last prints into a 91st), less the quarantined one
    minute = raw.filter(pl.col("tf") == "1m")
    assert 89 <= minute.height <= 90 and HUGE_MINUTE not in minute["ts"].to_list()
    assert set(raw["quality"].struct.field("n_src").to_list()) <= {1, 2, 3}

    quarantine = lake.read(BRONZE_QUARANTINE).filter(pl.col("table") == "silver.bars")
    assert first["quarantined"] >= 1 and quarantine["batch_id"].n_unique() == 1
    assert any("volume" in r for r in quarantine["reason"].to_list())
    assert any('"ts"' in r and "1m" in r for r in quarantine["raw"].to_list())
    results = lake.read(SILVER_QUALITY_RESULTS)
    assert results.filter(~pl.col("success")).height >= 1 and results["validated_at"].unique().to_list() == [END]

    # the 2:1 split (ex-date 2026-01-06) halves every price of 2026-01-05 and doubles volumes
    pair = raw.join(adjusted, on=["symbol_id", "tf", "ts"], suffix="_adj")
    assert pair.height == raw.height
    assert ((pair["close_adj"] - pair["close"] / 2).abs() < 1e-9).all()
    assert ((pair["volume_adj"] - pair["volume"] * 2).abs() < 1e-6).all()
    assert (pair["known_at_adj"] >= SPLIT_KNOWN).all()

    fresh = lake.read(SILVER_FRESHNESS)
    assert sorted(fresh["source"].to_list()) == ["sim-a", "sim-b", "sim-c"] and fresh["as_of"].unique().to_list() == [
        END
    ]
    assert fresh["stale"].all()  # the simulated session ended hours before the window end
    assert sorted(lake.read(SILVER_VENDOR_STATS)["source"].to_list()) == ["sim-a", "sim-b", "sim-c"]

    before = _snapshot(lake)
    second = reconcile(START, END, ["1m", "1h"], lake_root=lake.root)
    assert second == first
    after = _snapshot(lake)
    assert before.keys() == after.keys()
    for name, frame in before.items():
        assert after[name].equals(frame), name
    assert lake.read(SILVER_CLOCK_OFFSETS).height == 0


def test_scheduled_run_reconciles_the_lookback_before_its_start(prefect_harness, sim_lake):
    """Without start/end the window ends at the run's scheduled start, floored to the minute."""
    from prefect import get_client
    from prefect.utilities.asyncutils import run_coro_as_sync

    state = reconcile(timeframes=["1m"], lake_root=sim_lake.root, lookback_minutes=30, return_state=True)
    out = state.result()

    async def expected_start():
        async with get_client() as client:
            return (await client.read_flow_run(state.state_details.flow_run_id)).expected_start_time

    end = datetime.fromtimestamp(run_coro_as_sync(expected_start()).timestamp(), UTC).replace(second=0, microsecond=0)
    fresh = sim_lake.read(SILVER_FRESHNESS)  # written at the window end
    assert fresh["as_of"].unique().to_list() == [end] and fresh.height == out["silver.freshness"] == 3
    assert out["silver.bars"] == 0 and out["quarantined"] == 0  # the simulated day is long gone


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (None, None, (datetime(2026, 1, 5, 15, 0, tzinfo=UTC), datetime(2026, 1, 5, 15, 15, tzinfo=UTC))),
        (
            datetime(2026, 1, 5, 14, 0),
            None,
            (datetime(2026, 1, 5, 14, 0, tzinfo=UTC), datetime(2026, 1, 5, 15, 15, tzinfo=UTC)),
        ),
        (
            None,
            datetime(2026, 1, 5, 12, 0, tzinfo=UTC),
            (datetime(2026, 1, 5, 11, 45, tzinfo=UTC), datetime(2026, 1, 5, 12, 0, tzinfo=UTC)),
        ),
    ],
)
def test_window_resolution(start, end, expected):
    scheduled = datetime(2026, 1, 5, 15, 15, 0, 400_000, tzinfo=UTC)
    assert resolve_window(start, end, 15, scheduled) == expected


def test_window_must_not_be_empty():
    with pytest.raises(ConfigError, match="not before end"):
        resolve_window(END, START, 15, END)
