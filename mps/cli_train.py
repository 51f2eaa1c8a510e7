"""``mps train``, ``mps promote``, ``mps rollback``: model training and the champion's life cycle.

Registered on the main app by ``mps.cli`` (``register(app)``); torch, mlflow and lightgbm are
imported inside the commands so ``mps --help`` stays fast.
"""

from __future__ import annotations

import json

import typer
from rich.markup import escape

from core.errors import MpsError


def register(app: typer.Typer) -> None:
    """Add the training commands to ``app``."""
    from mps.cli import ProfileOpt, _fail, _prefect_env, console

    @app.command()
    def train(
        model: str | None = typer.Option(None, "--model", "-m", help="model name in the strategy (default: first)"),
        label_set: str | None = typer.Option(None, help="gold label set (default: ret_tick_v1 / ret_bars_v1)"),
        symbol: list[str] = typer.Option([], "--symbol", help="only these symbol_ids (repeatable)"),
        test_days: int = typer.Option(1, help="held-out days judged by the gates"),
        cal_days: int = typer.Option(1, help="days before the test that calibrate"),
        fast: bool = typer.Option(False, help="a small model (smoke runs)"),
        strategy: str | None = typer.Option(None, help="strategy YAML (default: the packaged one)"),
        profile: str = ProfileOpt,
    ) -> None:
        """Train on gold, calibrate, export to ONNX, log to MLflow and register the challenger."""
        import time

        try:
            _prefect_env(profile)
            from flows.train import train as train_flow

            out = train_flow(
                model_name=model,
                label_set=label_set,
                profile=profile,
                strategy_path=strategy,
                symbols=symbol or None,
                test_days=test_days,
                cal_days=cal_days,
                fast=fast,
                timestamp_ms=int(time.time() * 1000),
            )
        except MpsError as exc:
            _fail(exc)
        console.print(f"registered [bold]{out['model_name']}[/] v{out['version']} (challenger), run {out['run_id']}")
        for key in sorted(k for k in out["metrics"] if k.endswith(".log_score")):
            console.print(f"  {key}: {out['metrics'][key]:.4f}")

    @app.command()
    def promote(
        model: str = typer.Argument(..., help="registered model name"),
        version: str | None = typer.Option(None, help="version to judge (default: the challenger)"),
        sharpe: str | None = typer.Option(None, help='backtest evidence JSON {"sharpe","lower","upper","sigma"}'),
        nats_url: str | None = typer.Option(None, help="NATS URL (default: the profile's)"),
        strategy: str | None = typer.Option(None, help="strategy YAML (default: the packaged one)"),
        profile: str = ProfileOpt,
    ) -> None:
        """Judge a version with the strategy's gates; promote it (alias + NATS pointer) or show why not."""
        try:
            _prefect_env(profile)
            from flows.promote import promote as promote_flow

            out = promote_flow(
                model_name=model,
                version=version,
                profile=profile,
                strategy_path=strategy,
                sharpe=json.loads(sharpe) if sharpe else None,
                nats_url=nats_url,
            )
        except MpsError as exc:
            _fail(exc)
        for gate in out["decision"]["gates"]:
            colour = {"pass": "green", "fail": "red"}.get(gate["status"], "yellow")
            console.print(f"  [{colour}]{gate['status']:>7}[/] {gate['name']}: {escape(gate['detail'])}")
        if out["promoted"]:
            console.print(f"[bold green]promoted[/] {model} v{out['version']} (was v{out['previous']})")
        else:
            was = f"v{out['previous']}" if out["previous"] is not None else "none yet"
            console.print(f"[bold red]refused[/] {model} v{out['version']}; champion unchanged ({was})")
            raise typer.Exit(1)

    @app.command()
    def shadow(
        model: str = typer.Argument(..., help="registered model name"),
        version: str | None = typer.Option(None, help="version to shadow (default: the challenger)"),
        clear: bool = typer.Option(False, "--clear", help="stop shadow scoring (delete the challenger pointer)"),
        nats_url: str | None = typer.Option(None, help="NATS URL (default: the profile's)"),
        profile: str = ProfileOpt,
    ) -> None:
        """Score a version in shadow beside the champion (signals on the shadow subject, never acted on)."""
        try:
            _prefect_env(profile)
            from flows.promote import shadow_challenger

            out = shadow_challenger(model_name=model, version=version, clear=clear, profile=profile, nats_url=nats_url)
        except MpsError as exc:
            _fail(exc)
        if out["shadow"] is None:
            console.print(f"shadow scoring of {model} stopped")
        else:
            console.print(f"{model} v{out['shadow']} is scored in shadow ({out['onnx_uri']})")

    @app.command()
    def rollback(
        model: str = typer.Argument(..., help="registered model name"),
        nats_url: str | None = typer.Option(None, help="NATS URL (default: the profile's)"),
        profile: str = ProfileOpt,
    ) -> None:
        """Restore the previous champion (MLflow alias and the NATS champion pointer)."""
        try:
            _prefect_env(profile)
            from flows.promote import rollback_champion

            out = rollback_champion(model_name=model, profile=profile, nats_url=nats_url)
        except MpsError as exc:
            _fail(exc)
        console.print(f"champion of {model} is v{out['version']} again (was v{out['previous']})")

    @app.command()
    def canary(
        model: str = typer.Argument(..., help="registered model name"),
        label_set: str | None = typer.Option(None, help="gold label set (default: ret_tick_v1 / ret_bars_v1)"),
        nats_url: str | None = typer.Option(None, help="NATS URL (default: the profile's)"),
        profile: str = ProfileOpt,
    ) -> None:
        """Judge the champion against its predecessor on the live windows since promotion; roll back if worse."""
        from datetime import UTC, datetime

        try:
            _prefect_env(profile)
            from flows.canary import canary as canary_flow

            out = canary_flow(
                model_name=model, as_of=datetime.now(UTC), label_set=label_set, profile=profile, nats_url=nats_url
            )
        except MpsError as exc:
            _fail(exc)
        if "skipped" in out or "waiting" in out:
            console.print(f"{model} v{out['version']}: nothing decided ({out.get('skipped') or out['waiting']})")
        elif out["rollback"]:
            console.print(
                escape(f"{model} v{out['version']} rolled back to v{out['previous']}: {'; '.join(out['reasons'])}")
            )
        else:
            console.print(
                f"{model} v{out['version']} holds against v{out['previous']} on {out['windows']} live windows"
            )
