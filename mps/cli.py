"""The ``mps`` command line: ingest, query and inspect the lake.

Every command takes ``--profile`` (local by default); ``--lake`` overrides the profile's lake root.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC
from pathlib import Path

import typer
import yaml
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from core.errors import ConfigError, MpsError
from mps.cli_sources import ingest_command_class

app = typer.Typer(add_completion=False, no_args_is_help=True, help="MPS: market data lakehouse and signals.")
console = Console()
err = Console(stderr=True)

ProfileOpt = typer.Option("local", "--profile", "-p", help="profile in configs/profiles")
LakeOpt = typer.Option(None, "--lake", help="lake root overriding the profile (path or s3:// URI)")


def _lake(profile: str, lake_root: str | None):
    from core.profile import load_profile
    from lakehouse.storage import Lake
    from mps.catalog import all_tables

    all_tables()  # register tables declared beside their writers, so SQL sees every table
    prof = load_profile(profile)
    lake = Lake.from_profile(prof)
    if lake_root:
        lake = Lake(lake_root if "://" in lake_root else str(Path(lake_root).resolve()), lake.storage_options)
    lake.check_root()
    return lake


def _prefect_env(profile: str) -> None:
    """Point Prefect at the profile's server and home (the shell's job: flows never read env vars).

    Set before the first flow call; variables the user already exported win.
    """
    import os

    from core.profile import load_profile

    prof = load_profile(profile)
    os.environ.setdefault("PREFECT_HOME", prof.prefect.home)
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    if prof.prefect.api_url:
        os.environ.setdefault("PREFECT_API_URL", prof.prefect.api_url)
    else:  # an ephemeral server starts with the command: Prefect's 20 s start-up limit fails on a busy machine
        os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")


def _parse_kv(pairs: list[str]) -> dict:
    """Parse ``key=value`` pairs; values are read as YAML scalars/lists (``symbols=[A,B]``)."""
    out: dict = {}
    for pair in pairs:
        if "=" not in pair:
            raise ConfigError(f"--param {pair!r}: expected key=value")
        key, value = pair.split("=", 1)
        out[key.strip()] = yaml.safe_load(value)
    return out


def _fail(exc: MpsError) -> None:
    err.print(f"[bold red]error:[/] {exc}")
    raise typer.Exit(2)


@app.command(cls=ingest_command_class())
def ingest(
    source: str = typer.Argument(..., help="source name (see `mps sources`)"),
    param: list[str] = typer.Option([], "--param", "-P", help="adapter parameter key=value (repeatable)"),
    params_file: Path | None = typer.Option(None, "--params-file", help="YAML file of adapter parameters"),
    profile: str = ProfileOpt,
    lake_root: str | None = LakeOpt,
) -> None:
    """Ingest a source into bronze; print the per-batch account. `mps ingest SOURCE --help` lists its parameters."""
    from core.clock import utc_clock
    from lakehouse.run_source import run_source

    try:
        raw = yaml.safe_load(params_file.read_text()) if params_file else {}
        raw = {**(raw or {}), **_parse_kv(param)}
        lake = _lake(profile, lake_root)
        with Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed:,} rows"),
            TimeElapsedColumn(),
            console=err,
            transient=True,
        ) as bar:
            task = bar.add_task(f"ingest {source}", total=None)

            def advance(account):
                bar.update(task, advance=account.rows_read, description=f"{source}: {Path(account.file).name}")

            report = run_source(lake, source, raw, utc_clock, progress=advance)
    except MpsError as exc:
        _fail(exc)
        return
    for line in report.lines():
        console.print(line, highlight=False, soft_wrap=True)
    console.print(
        f"total: read {report.total('rows_read'):,} = written {report.total('rows_written'):,} + duplicates "
        f"{report.total('duplicates'):,} + quarantined {report.total('quarantined'):,}; "
        f"{len(report.failures)} file(s) failed"
    )
    if not report.balanced:
        _fail(MpsError("account does not balance: this is a bug, please report it"))
    if report.failures:
        err.print(
            f"[bold red]error:[/] {len(report.failures)} file(s) failed: " + ", ".join(f.file for f in report.failures)
        )
        raise typer.Exit(1)


@app.command()
def sources(name: str | None = typer.Argument(None, help="one source (default: all)")) -> None:
    """List the sources that can be ingested, with every parameter and an example."""
    from lakehouse.sources.registry import SOURCES
    from mps.cli_sources import describe

    try:
        for source in [name] if name else sorted(SOURCES):
            for line in describe(source):
                console.print(line, highlight=False, markup=False, soft_wrap=True)
    except MpsError as exc:
        _fail(exc)


@app.command()
def sql(
    statement: str = typer.Argument(..., help="a DuckDB SQL statement over bronze.*, silver.*, gold.*"),
    fmt: str = typer.Option("table", "--format", "-f", help="table, csv or json"),
    limit: int = typer.Option(50, help="rows to print in table format"),
    allow_writes: bool = typer.Option(
        False, "--allow-writes", help="DuckDB's full power: file access, COPY TO, ATTACH, extensions (your own files)"
    ),
    profile: str = ProfileOpt,
    lake_root: str | None = LakeOpt,
) -> None:
    """Run SQL over the lake with DuckDB (read-only unless --allow-writes)."""
    from lakehouse.sql import query

    skipped: list[str] = []
    try:
        df = query(_lake(profile, lake_root), statement, allow_writes=allow_writes, skipped=skipped)
    except MpsError as exc:
        for note in skipped:
            err.print(f"[yellow]skipped:[/] {note}")
        _fail(exc)
        return
    for note in skipped:
        err.print(f"[yellow]skipped:[/] {note}")
    if fmt == "csv":
        sys.stdout.write(df.write_csv())
    elif fmt == "json":
        sys.stdout.write(df.write_json() + "\n")
    else:
        table = Table(*df.columns, show_lines=False)
        for row in df.head(limit).iter_rows():
            table.add_row(*("" if v is None else str(v) for v in row))
        console.print(table)
        console.print(f"{df.height:,} row(s)")


@app.command()
def tables(profile: str = ProfileOpt, lake_root: str | None = LakeOpt) -> None:
    """Show every table: rows, Delta version, files, last update."""
    from datetime import datetime

    from lakehouse.tables import TABLES

    try:
        lake = _lake(profile, lake_root)
    except MpsError as exc:
        _fail(exc)
        return
    out = Table("table", "rows", "version", "files", "last update (UTC)")
    for spec in TABLES.values():
        try:
            info = lake.info(spec)
        except MpsError as exc:  # one damaged table never hides the others
            out.add_row(spec.qualified, "-", "-", "-", f"unreadable: {exc}", style="red")
            continue
        if info is None:
            out.add_row(spec.qualified, "-", "-", "-", "not written yet", style="dim")
            continue
        when = (
            datetime.fromtimestamp(info.last_update_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
            if info.last_update_ms
            else "?"
        )
        out.add_row(spec.qualified, f"{info.rows:,}", str(info.version), str(info.files), when)
    console.print(out)


quality_app = typer.Typer(no_args_is_help=True, help="Data quality: validation results and docs.")
app.add_typer(quality_app, name="quality")


@quality_app.command("docs")
def quality_docs(
    out: Path = typer.Option(Path(".mps/quality-docs"), "--out", help="directory for the HTML pages"),
    profile: str = ProfileOpt,
    lake_root: str | None = LakeOpt,
) -> None:
    """Build browsable HTML of every validation run and the rows it quarantined."""
    from lakehouse.quality.docs import build_docs

    index = build_docs(_lake(profile, lake_root), out)
    console.print(f"quality docs: {index.resolve().as_uri()}")


@app.command()
def reconcile(
    start: str = typer.Option(..., help="window start, ISO-8601 UTC (e.g. 2026-01-05T00:00)"),
    end: str = typer.Option(..., help="window end (exclusive), ISO-8601 UTC"),
    timeframe: list[str] = typer.Option(["1m"], "--tf", help="bar timeframes (repeatable)"),
    symbol: list[str] = typer.Option([], "--symbol", help="only these symbol_ids (repeatable)"),
    profile: str = ProfileOpt,
    lake_root: str | None = LakeOpt,
) -> None:
    """Run the reconcile flow over a window: bronze vendors -> silver consensus bars."""

    from core.timetypes import parse_utc as parse

    try:
        _prefect_env(profile)
        from flows.reconcile import reconcile as reconcile_flow

        lake = _lake(profile, lake_root)
        written = reconcile_flow(
            parse(start), parse(end), timeframes=timeframe, symbols=symbol or None, lake_root=lake.root, profile=profile
        )
    except MpsError as exc:
        _fail(exc)
        return
    for name, rows in written.items():
        console.print(f"{name}: {rows:,} rows")


@app.command()
def config(
    profile: str = ProfileOpt, strategy: Path | None = typer.Option(None, help="strategy YAML to check")
) -> None:
    """Validate and print the profile (and a strategy file)."""
    from core.profile import load_profile
    from core.strategy import DEFAULT_STRATEGY, load_strategy

    try:
        prof = load_profile(profile)
        strat = load_strategy(strategy or DEFAULT_STRATEGY)
    except MpsError as exc:
        _fail(exc)
        return
    console.print_json(json.dumps({"profile": prof.model_dump(), "strategy": strat.model_dump()}))


from mps import cli_gold  # noqa: E402  (its commands import from this module)

cli_gold.register(app)

from mps import cli_backtest  # noqa: E402

app.command("backtest")(cli_backtest.backtest)

from mps import cli_stream  # noqa: E402

cli_stream.register(app)

from mps import cli_stack  # noqa: E402

cli_stack.register(app)

from mps import cli_train  # noqa: E402

cli_train.register(app)

from mps import cli_maintain  # noqa: E402

cli_maintain.register(app)

from mps import cli_symbols  # noqa: E402

cli_symbols.register(app)


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
