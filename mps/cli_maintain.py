"""CLI: ``mps maintain`` (compact small files, checkpoint logs, vacuum past the time-travel window)."""

from __future__ import annotations

import typer

from core.errors import MpsError


def register(app: typer.Typer) -> None:
    """Add ``maintain`` to ``app``."""
    from mps.cli import LakeOpt, ProfileOpt, _fail, _lake, console, err

    @app.command()
    def maintain(
        retention_hours: int = typer.Option(168, help="time-travel window kept by vacuum (hours)"),
        table: list[str] = typer.Option([], "--table", help="only these tables (layer.name, repeatable)"),
        profile: str = ProfileOpt,
        lake_root: str | None = LakeOpt,
    ) -> None:
        """Compact small files, checkpoint the Delta logs and vacuum files older than the window."""
        from datetime import timedelta

        from lakehouse.maintain import maintain as maintain_tables
        from lakehouse.tables import TABLES
        from lakehouse.tables import table as lookup

        try:
            lake = _lake(profile, lake_root)
            specs = [lookup(t) for t in table] if table else list(TABLES.values())
            done, failed = maintain_tables(lake, specs, timedelta(hours=retention_hours))
        except MpsError as exc:
            _fail(exc)
            return
        for upkeep in done:
            console.print(upkeep.line(), highlight=False, soft_wrap=True)
        for message in failed:
            err.print(f"[bold red]failed:[/] {message}")
        if failed:
            raise typer.Exit(1)
