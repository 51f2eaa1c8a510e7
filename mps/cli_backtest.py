"""``mps backtest``: run the backtest flow and print the run id, metrics with CIs and the report path."""

from __future__ import annotations

from pathlib import Path

import typer


def backtest(
    symbol: list[str] = typer.Option([], "--symbol", help="symbol_ids (repeatable; default: the strategy's universe)"),
    tf: str = typer.Option("1d", "--tf", help="bar timeframe"),
    start: str | None = typer.Option(None, help="window start, ISO-8601 UTC"),
    end: str | None = typer.Option(None, help="window end (exclusive), ISO-8601 UTC"),
    signals: Path | None = typer.Option(None, help="Parquet of walk-forward predictions (size or probs per row)"),
    model: str | None = typer.Option(None, help="trade this model's gold.signals"),
    model_version: str | None = typer.Option(None, help="model version (also the MLflow link)"),
    adjustment: str = typer.Option("adjusted", help="silver bars: adjusted or raw"),
    strategy: Path | None = typer.Option(None, help="strategy YAML (default: the packaged one)"),
    out_dir: Path = typer.Option(Path(".mps/reports/backtest"), help="report folder (one subfolder per run)"),
    mlflow_experiment: str | None = typer.Option(None, help="log the report to this MLflow experiment"),
    profile: str = typer.Option("local", "--profile", "-p", help="profile in configs/profiles"),
    lake_root: str | None = typer.Option(None, "--lake", help="lake root overriding the profile"),
) -> None:
    """Backtest signals over silver bars: gold.backtest_* rows and an HTML report with plots and a what-if table."""
    from rich.console import Console
    from rich.table import Table

    from core.clock import utc_clock
    from core.errors import MpsError
    from core.timetypes import parse_utc as parse
    from mps.cli import _fail, _lake, _prefect_env

    console = Console()
    try:
        _prefect_env(profile)
        from flows.backtest import backtest as backtest_flow

        lake = _lake(profile, lake_root)
        out = backtest_flow(
            utc_clock(),
            symbols=symbol or None,
            tf=tf,
            start=parse(start),
            end=parse(end),
            signals_path=str(signals) if signals else None,
            model=model,
            model_version=model_version,
            adjustment=adjustment,
            out_dir=str(out_dir),
            strategy_path=str(strategy) if strategy else None,
            mlflow_experiment=mlflow_experiment,
            profile=profile,
            lake_root=lake.root,
        )
    except MpsError as exc:
        _fail(exc)
        return
    from backtest.results import read_run
    from lakehouse.storage import Lake

    metrics = read_run(Lake(lake.root, lake.storage_options), out["run_id"])["backtest_metrics"]
    table = Table("metric", "value", "lo", "hi", title=f"run {out['run_id']}")
    for row in metrics.iter_rows(named=True):
        table.add_row(row["metric"], *(f"{row[k]:.4g}" for k in ("value", "lo", "hi")))
    console.print(table)
    console.print(f"result hash {out['result_hash']}")
    console.print(f"report: {out['report']}")
    if out.get("mlflow_run_id"):
        console.print(f"MLflow run: {out['mlflow_run_id']}")
