"""Backtest flow: silver bars + signals (gold.signals, or a model's walk-forward predictions file) ->
engine -> gold.backtest_* tables and an HTML report; logged to MLflow when it backtests a model.

Every parameter has a default, so the deployment runs from a schedule or the Prefect UI's Run button:
``created_at`` is the run's scheduled start (``flows.watermarks.scheduled_start``), the model is the
strategy's first, its timeframe the model's. A run whose window holds no signals writes nothing and
says so. The run's out-of-sample Sharpe and kill-switch count go to gold.monitoring (``oos_sharpe``,
``abort_dd_intraday``) for the API's /metrics. The what-if variants (fees and slippage scaled) are
independent runs of the prepared events and go to the flow's task runner as tasks: with Prefect's
``DaskTaskRunner`` they fan out over a ``dask.distributed`` cluster (DESIGN section 9).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.compute as pc
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from backtest.engine import BacktestResult, Prepared, prepare, run_prepared
from backtest.evaluate import evaluate
from backtest.report import write_report
from backtest.results import write_result
from backtest.sizing import SizingConfig
from backtest.targets import hold_steps, size_signals
from core.errors import ConfigError
from core.profile import load_profile
from core.strategy import BacktestSettings, load_strategy
from flows.watermarks import scheduled_start
from lakehouse.monitoring import record_metrics
from lakehouse.storage import Lake, ts_value
from lakehouse.tables import GOLD_SIGNALS, SILVER_BARS

run_variant = task(name="backtest-variant", cache_policy=NO_CACHE)(run_prepared)


def on_task_runner(prep: Prepared, configs: Sequence[BacktestSettings]) -> list[BacktestResult]:
    """Run the what-if variants as tasks on the flow's task runner (a Dask cluster scales them out)."""
    futures = [run_variant.submit(prep, cfg) for cfg in configs]
    return [future.result() for future in futures]


@task
def read_bars(lake: Lake, symbols: list[str], tf: str, adjustment: str, start, end) -> tuple[pl.DataFrame, dict]:
    """Silver bars of ``symbols`` at ``tf`` in [start, end) and the table version read."""
    f = pc.field("symbol_id").isin(symbols) & (pc.field("tf") == tf) & (pc.field("adjustment") == adjustment)
    if start is not None:
        f = f & (pc.field("ts") >= ts_value(start))
    if end is not None:
        f = f & (pc.field("ts") < ts_value(end))
    cols = ["symbol_id", "ts", "open", "high", "low", "close", "volume"]
    bars = lake.read(SILVER_BARS, columns=cols, filter=f)
    info = lake.info(SILVER_BARS)
    return bars, {SILVER_BARS.qualified: info.version if info else -1}


@task
def read_signals(
    lake: Lake, symbols: list[str], tf: str, model: str | None, model_version: str | None, path: str | None
) -> tuple[pl.DataFrame, dict]:
    """Signals from a predictions file (Parquet: symbol_id, ts[, known_at], size or probs) or gold.signals."""
    if path is not None:
        digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
        return pl.read_parquet(path).filter(pl.col("symbol_id").is_in(symbols)), {path: digest}
    if model is None:
        raise ConfigError("backtest needs a signals file or a model whose gold.signals to trade")
    f = pc.field("symbol_id").isin(symbols) & (pc.field("tf") == tf) & (pc.field("model") == model)
    if model_version is not None:
        f = f & (pc.field("model_version") == model_version)
    signals = lake.read(GOLD_SIGNALS, columns=["symbol_id", "ts", "size"], filter=f)
    info = lake.info(GOLD_SIGNALS)
    return signals, {GOLD_SIGNALS.qualified: info.version if info else -1}


@flow(name="backtest")
def backtest(
    created_at: datetime | None = None,
    symbols: list[str] | None = None,
    tf: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    signals_path: str | None = None,
    model: str | None = None,
    model_version: str | None = None,
    adjustment: str = "adjusted",
    trial_sharpes: list[float] | None = None,
    out_dir: str = ".mps/reports/backtest",
    strategy_path: str | None = None,
    mlflow_experiment: str | None = None,
    profile: str = "local",
    lake_root: str | None = None,
    hold: int | None = None,
) -> dict:
    """Backtest a model's signals over silver bars; write gold.backtest_* and the report; return paths and ids.

    ``created_at`` is the caller's clock reading (stamped on the run row; default: the run's scheduled
    start). Without a signals file, ``model`` defaults to the strategy's first model and ``tf`` to its
    timeframe (``tf`` "1d" for a signals file). ``trial_sharpes``: the
    per-period Sharpe ratios of every configuration tried, for the deflated Sharpe ratio. With
    ``mlflow_experiment`` and a model version, the report is logged to MLflow. ``hold``: the
    signals each size is held for (``backtest.events.held_sizes``); default for a strategy model the
    sizing horizon in its timeframe's steps, else 1 (each signal sets the whole position).
    """
    prof = load_profile(profile)
    strategy = load_strategy(Path(strategy_path)) if strategy_path else load_strategy()
    settings = strategy.backtest
    lake = Lake.from_profile(prof, root=lake_root)
    created_at = created_at or scheduled_start()
    symbols = symbols or strategy.universe.symbols
    if signals_path is None and model is None:
        model = strategy.models[0].name
    spec = next((m for m in strategy.models if m.name == model), None)
    tf = tf or (spec.timeframe if spec and signals_path is None else "1d")
    signals, signal_versions = read_signals(lake, symbols, tf, model, model_version, signals_path)
    if signals.height == 0:
        get_run_logger().info("no %s signals of %s for %s: nothing to backtest", tf, model or signals_path, symbols)
        return {"run_id": None, "skipped": f"no {tf} signals of {model or signals_path}"}
    bars, versions = read_bars(lake, symbols, tf, adjustment, start, end)
    sizing = SizingConfig.load(strategy.sizing_path(model))
    if "size" not in signals.columns:
        b = spec.buckets if spec is not None else strategy.models[0].buckets
        edges = np.linspace(b.lo_bps, b.hi_bps, b.count + 1)
        signals = size_signals(signals, edges, sizing, nav=settings.initial_cash)
    if hold is None:  # a strategy model's signals: held for its sizing horizon; a signals file: as given
        unit = "s" if spec is not None and spec.kind == "tick" else "bars"
        hold = hold_steps(spec.horizons, unit, tf, sizing.horizon) if spec is not None and signals_path is None else 1
    prep = prepare(
        bars,
        signals,
        settings,
        data_versions=versions | signal_versions,
        model_version=model_version or model,
        hold=hold,
    )
    trials = np.asarray(trial_sharpes) if trial_sharpes else None
    ev = evaluate(prep, settings, trial_sharpes=trials, runs=on_task_runner)
    written = write_result(lake, ev.result, ev.metrics, name=strategy.name, created_at=created_at)
    sharpe = ev.metrics.filter(pl.col("metric") == "sharpe")["value"]
    record_metrics(
        lake,
        {"oos_sharpe": sharpe[0] if sharpe.len() else float("nan"), "abort_dd_intraday": ev.result.kills.height},
        ts=created_at,
        source="backtest",
        run_id=ev.result.run_id,
        model=model or "",
        model_version=model_version,
    )
    report_dir = Path(out_dir) / ev.result.run_id
    paths = write_report(ev.result, ev.daily, ev.metrics, ev.what_if, report_dir, title=f"{strategy.name} backtest")
    out = {"run_id": ev.result.run_id, "result_hash": ev.result.result_hash, "written": written, **paths}
    out["what_if"] = ev.what_if.to_dicts() if ev.what_if is not None else []
    if mlflow_experiment and (model_version or model):
        from training.tracking import Tracker

        metric_values = {r["metric"]: r["value"] for r in ev.metrics.iter_rows(named=True) if np.isfinite(r["value"])}
        out["mlflow_run_id"] = Tracker.from_profile(prof).log_run(
            mlflow_experiment,
            f"backtest-{ev.result.run_id[:12]}",
            params={"model": model, "model_version": model_version, "run_id": ev.result.run_id, "tf": tf},
            metrics={f"backtest.{k}": v for k, v in metric_values.items()},
            artifacts={"backtest": report_dir},
            tags={"backtest.run_id": ev.result.run_id, "backtest.result_hash": ev.result.result_hash},
            timestamp_ms=int(created_at.timestamp() * 1000),
        )
    return out
