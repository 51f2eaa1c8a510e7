"""gold.monitoring: the model-health figures the API exports to Prometheus (seed MPS section 11).

One row per (source, run_id, metric): ``drift_psi`` (the drift check), ``oos_sharpe`` and
``abort_dd_intraday`` (a backtest: the Sharpe ratio of its out-of-sample signals and how many times
the intraday drawdown kill switch fired), ``ece`` (the promotion gates' calibration error). Writers
call ``record_metrics``; re-recording a run replaces its rows (a MERGE on the keys), so a retried
flow does not double count. ``mps.api.observability`` reads the latest value per metric and model.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime

import polars as pl

from core.errors import ContractError
from core.timetypes import PL_TS
from lakehouse.schema import TS, TableSpec, col
from lakehouse.storage import Lake
from lakehouse.tables import F64, STR, register

METRICS = ("drift_psi", "oos_sharpe", "ece", "abort_dd_intraday")

GOLD_MONITORING = register(
    TableSpec(
        "gold",
        "monitoring",
        (
            col("ts", TS, doc="as-of time of the measurement (the writer's clock or its run's data end)"),
            col("metric", STR, doc="drift_psi, oos_sharpe, ece or abort_dd_intraday"),
            col("value", F64),
            col("model", STR, doc="the model the figure describes ('' when none)"),
            col("model_version", STR, doc="'' when none"),
            col("source", STR, doc="what measured it: backtest, promote, drift"),
            col("run_id", STR, doc="the writer's run (backtest run id, flow run id)"),
        ),
        keys=("source", "run_id", "metric"),
        lineage=False,
        doc="model-health metrics exported by the API's /metrics (drift, out-of-sample Sharpe, ECE, aborts)",
    )
)


def record_metrics(
    lake: Lake,
    values: Mapping[str, float],
    *,
    ts: datetime,
    source: str,
    run_id: str,
    model: str | None = None,
    model_version: str | None = None,
) -> int:
    """Write ``values`` (metric name -> value) measured at ``ts`` by ``source``'s run ``run_id``; rows written.

    Names must be among ``METRICS``; non-finite values are skipped (a metric that could not be
    computed is absent, never a fake zero). Idempotent per (source, run_id, metric).
    """
    unknown = sorted(set(values) - set(METRICS))
    if unknown:
        raise ContractError(f"gold.monitoring: unknown metric(s) {unknown}; expected one of {list(METRICS)}")
    if ts.tzinfo is None:
        raise ContractError(f"gold.monitoring: ts {ts.isoformat()} must be timezone-aware")
    rows = [(name, float(v)) for name, v in values.items() if v is not None and math.isfinite(float(v))]
    if not rows:
        return 0
    frame = pl.DataFrame(
        {
            "ts": [ts] * len(rows),
            "metric": [n for n, _ in rows],
            "value": [v for _, v in rows],
            "model": [model or ""] * len(rows),
            "model_version": [model_version or ""] * len(rows),
            "source": [source] * len(rows),
            "run_id": [run_id] * len(rows),
        },
        schema_overrides={"ts": PL_TS},
    )
    lake.upsert(GOLD_MONITORING, frame)
    return frame.height


def latest_metrics(lake: Lake) -> pl.DataFrame:
    """The latest value of each (metric, model): what a scrape exports."""
    if not lake.exists(GOLD_MONITORING):
        return pl.DataFrame(schema={"metric": pl.String, "model": pl.String, "value": pl.Float64})
    rows = lake.read(GOLD_MONITORING, columns=["ts", "metric", "model", "value"])
    return rows.sort("ts").group_by("metric", "model", maintain_order=True).last().select("metric", "model", "value")
