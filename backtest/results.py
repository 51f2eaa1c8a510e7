"""gold.backtest_* tables (DESIGN section 4: gold.backtests = runs, trades, equity, metrics) and their writer.

Declared here, beside their only writer, and registered (mps.catalog imports this module). Every
row carries the run's ``run_id`` (the hash of its inputs: data versions, settings, model
version), so writing a run again replaces its rows and leaves the tables unchanged.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING

import polars as pl
import pyarrow as pa

from lakehouse.predicates import eq
from lakehouse.schema import TS, TableSpec, col
from lakehouse.storage import Lake
from lakehouse.tables import register

if TYPE_CHECKING:  # the catalog imports this module: keep numba (the engine) out of `mps sql`
    from backtest.engine import BacktestResult

F64, I64, STR = pa.float64(), pa.int64(), pa.large_string()
_RUN = col("run_id", STR, doc="hash of the run's inputs (data versions, settings, model version)")

BACKTEST_RUNS = register(
    TableSpec(
        "gold",
        "backtest_runs",
        (
            _RUN,
            col("name", STR, doc="strategy or job name"),
            col("model_version", STR, nullable=True),
            col("data_versions", STR, doc="JSON: table or file -> version the run read"),
            col("settings", STR, doc="JSON: the strategy's backtest section as run"),
            col("target", STR, doc="signal column traded: size (fraction of NAV) or units"),
            col("result_hash", STR, doc="hash of equity and trades: same inputs give the same hash"),
            col("n_events", I64, non_negative=True),
            col("n_trades", I64, non_negative=True),
            col("n_kills", I64, non_negative=True),
            col("final_nav", F64),
            col("created_at", TS, doc="when the run was recorded (from the caller's clock)"),
        ),
        keys=("run_id",),
        lineage=False,
        doc="one row per backtest run",
    )
)

BACKTEST_TRADES = register(
    TableSpec(
        "gold",
        "backtest_trades",
        (
            _RUN,
            col("seq", I64, doc="order of the record in the run"),
            col("ts", TS, doc="bar (end) whose open filled the order"),
            col("symbol_id", STR, doc="'*' for a portfolio-wide kill event"),
            col("kind", STR, doc="fill, roll (futures) or kill (drawdown switch)"),
            col("qty", F64),
            col("ref_price", F64, doc="fill: the open; kill: NAV at the trigger"),
            col("fill_price", F64, doc="fill: open adjusted for half-spread and slippage; kill: the session peak"),
            col("fee", F64, doc="fees (roll: the roll cost)"),
            col("spread_cost", F64),
            col("slippage_cost", F64),
        ),
        keys=("run_id", "seq"),
        partition_by=("run_id",),
        lineage=False,
        doc="fills, rolls and kill-switch events of each run",
    )
)

BACKTEST_EQUITY = register(
    TableSpec(
        "gold",
        "backtest_equity",
        (
            _RUN,
            col("ts", TS),
            col("day", I64, doc="session id"),
            col("nav", F64),
            col("cash", F64),
            col("gross", F64, doc="gross exposure (sum of |position| x price)"),
            col("traded", F64, non_negative=True, doc="notional traded at this timestamp"),
        ),
        keys=("run_id", "ts"),
        partition_by=("run_id",),
        lineage=False,
        doc="portfolio equity curve per timestamp",
    )
)

BACKTEST_METRICS = register(
    TableSpec(
        "gold",
        "backtest_metrics",
        (
            _RUN,
            col("metric", STR),
            col("value", F64, finite=False),
            col("lo", F64, finite=False),
            col("hi", F64, finite=False),
            col("level", F64),
            col("cluster", STR, doc="bootstrap clusters: day or week"),
            col("draws", I64),
            col("n_clusters", I64),
        ),
        keys=("run_id", "metric"),
        lineage=False,
        doc="metrics with clustered-bootstrap CIs (and the deflated Sharpe ratio when trials are given)",
    )
)

TABLES = (BACKTEST_RUNS, BACKTEST_TRADES, BACKTEST_EQUITY, BACKTEST_METRICS)


def run_row(result: BacktestResult, name: str, created_at: datetime) -> pl.DataFrame:
    """The gold.backtest_runs row of a result."""
    return pl.DataFrame(
        {
            "run_id": [result.run_id],
            "name": [name],
            "model_version": [result.inputs.get("model_version")],
            "data_versions": [json.dumps(result.inputs.get("data_versions", {}), sort_keys=True, default=str)],
            "settings": [json.dumps(result.settings.model_dump(mode="json"), sort_keys=True)],
            "target": [result.inputs.get("target", "size")],
            "result_hash": [result.result_hash],
            "n_events": [result.n_events],
            "n_trades": [result.trades.filter(pl.col("kind") == "fill").height],
            "n_kills": [result.kills.height],
            "final_nav": [float(result.equity["nav"][-1])],
            "created_at": [created_at],
        },
        schema_overrides={"model_version": pl.String, "created_at": pl.Datetime("ns", "UTC")},
    )


def write_result(lake: Lake, result: BacktestResult, metrics: pl.DataFrame, *, name: str, created_at: datetime) -> dict:
    """Write a run's rows to the four gold.backtest_* tables (replacing that run's rows); return counts."""
    run = pl.lit(result.run_id).alias("run_id")
    frames = {
        BACKTEST_RUNS: run_row(result, name, created_at),
        BACKTEST_TRADES: result.trades.with_row_index("seq").with_columns(pl.col("seq").cast(pl.Int64), run),
        BACKTEST_EQUITY: result.equity.with_columns(run),
        BACKTEST_METRICS: metrics.with_columns(run),
    }
    return {
        spec.qualified: lake.replace_window(spec, frame, eq("run_id", result.run_id)) for spec, frame in frames.items()
    }


def read_run(lake: Lake, run_id: str) -> dict[str, pl.DataFrame]:
    """Read back one run's rows from each table."""
    import pyarrow.compute as pc

    return {spec.name: lake.read(spec, filter=pc.field("run_id") == run_id) for spec in TABLES}
