"""The backtest flow end to end: silver GOOG bars + a predictions file -> gold.backtest_* + HTML report."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import polars as pl
import pytest

from backtest.results import BACKTEST_EQUITY, BACKTEST_METRICS, BACKTEST_RUNS, BACKTEST_TRADES
from flows.backtest import backtest
from lakehouse.tables import SILVER_BARS

CREATED = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def silver_goog(goog_bars: pl.DataFrame) -> pl.DataFrame:
    quality = pl.struct(
        pl.lit(False).alias("stale"),
        pl.lit(0.0).alias("outlier_frac"),
        pl.lit(1, pl.Int64).alias("n_src"),
        pl.lit(0.0).alias("lat_ms"),
        pl.lit(["backtesting"]).alias("sources"),
        pl.lit([], pl.List(pl.String)).alias("outliers"),
    )
    return goog_bars.with_columns(
        pl.lit("1d").alias("tf"),
        pl.lit("raw").alias("adjustment"),
        pl.lit(None, pl.Float64).alias("vwap"),
        pl.lit(None, pl.Int64).alias("n_trades"),
        quality.alias("quality"),
        pl.col("ts").alias("known_at"),
    )


def test_flow_writes_tables_and_report_reproducibly(prefect_harness, lake, goog_bars, tmp_path):
    lake.append(SILVER_BARS, silver_goog(goog_bars))
    close = goog_bars["close"].to_numpy()
    fast = np.convolve(close, np.ones(10) / 10)[: len(close)]
    slow = np.convolve(close, np.ones(40) / 40)[: len(close)]
    size = np.where(np.arange(len(close)) < 40, 0.0, np.where(fast > slow, 0.05, -0.05))
    path = tmp_path / "predictions.parquet"
    goog_bars.select("symbol_id", "ts", pl.Series("size", size)).write_parquet(path)
    kwargs = dict(
        symbols=["GOOG:US"],
        tf="1d",
        signals_path=str(path),
        adjustment="raw",
        out_dir=str(tmp_path / "reports"),
        lake_root=lake.root,
        trial_sharpes=[0.01, 0.03, -0.02, 0.05],
    )
    first = backtest(CREATED, **kwargs)
    tables = {s.name: lake.read(s) for s in (BACKTEST_RUNS, BACKTEST_TRADES, BACKTEST_EQUITY, BACKTEST_METRICS)}
    second = backtest(CREATED, **kwargs)
    assert (first["run_id"], first["result_hash"]) == (second["run_id"], second["result_hash"])
    for spec in (BACKTEST_RUNS, BACKTEST_TRADES, BACKTEST_EQUITY, BACKTEST_METRICS):
        assert (
            lake.read(spec)
            .sort(lake.read(spec).columns[:2])
            .equals(tables[spec.name].sort(tables[spec.name].columns[:2]))
        )
    assert tables["backtest_runs"].height == 1
    assert tables["backtest_equity"].height == goog_bars.height
    metrics = tables["backtest_metrics"]
    assert {"sharpe", "calmar", "max_drawdown", "deflated_sharpe"} <= set(metrics["metric"])
    sharpe = metrics.filter(pl.col("metric") == "sharpe").row(0, named=True)
    assert sharpe["lo"] < sharpe["value"] < sharpe["hi"]
    html = (tmp_path / "reports" / first["run_id"] / "report.html").read_text()
    for png in ("equity.png", "drawdown.png", "returns.png", "exposure.png"):
        assert (tmp_path / "reports" / first["run_id"] / png).stat().st_size > 1000
        assert png in html
    assert "What if" in html and first["result_hash"] in html


@pytest.mark.slow
def test_what_if_variants_on_a_dask_cluster_equal_one_process(prefect_harness, lake, goog_bars, tmp_path):
    from prefect_dask import DaskTaskRunner

    lake.append(SILVER_BARS, silver_goog(goog_bars))
    close = goog_bars["close"].to_numpy()
    size = np.where(np.arange(len(close)) % 40 < 20, 0.05, -0.05)  # a run that pays fees and slippage
    path = tmp_path / "predictions.parquet"
    goog_bars.select("symbol_id", "ts", pl.Series("size", size)).write_parquet(path)
    kwargs = dict(symbols=["GOOG:US"], tf="1d", signals_path=str(path), adjustment="raw", lake_root=lake.root)
    here = backtest(CREATED, out_dir=str(tmp_path / "here"), **kwargs)
    runner = DaskTaskRunner(cluster_kwargs={"n_workers": 2, "threads_per_worker": 1, "processes": True})
    fanned = backtest.with_options(task_runner=runner)(CREATED, out_dir=str(tmp_path / "dask"), **kwargs)
    assert len(here["what_if"]) == 12 and len({r["total_return"] for r in here["what_if"]}) > 1
    assert fanned["what_if"] == here["what_if"] and fanned["result_hash"] == here["result_hash"]
