"""``mps sources [NAME]``: every adapter with its parameters (type, default, description) and an example."""

from __future__ import annotations

import json

from pydantic_core import PydanticUndefined

EXAMPLES = {  # one runnable example per adapter, with the parameters a new user needs first
    "simulator": "mps ingest simulator -P symbols=[SIM1:SIM,SIM2:SIM] -P start=2026-01-05 -P n_days=1",
    "tabular": "mps ingest tabular -P mapping=yahoo_daily -P paths=[data/yahoofinance-AAPL-20240101.csv]",
    "lobster": "mps ingest lobster -P paths=[data/AAPL_2012-06-21_34200000_57600000_message_10.csv]",
    "databento": "mps ingest databento -P paths=[data/glbx-mdp3-20240102.trades.dbn.zst]",
    "lean": "mps ingest lean --params-file my-lean.yaml   (see `mps sources lean` for the keys)",
    "lean_reference": "mps ingest lean_reference --params-file my-lean-ref.yaml",
    "sql": "mps ingest sql --params-file my-postgres.yaml   (dsn, table, watermark column)",
}


def describe(name: str) -> list[str]:
    """Lines describing adapter ``name``: its doc, each parameter, and an example command."""
    from lakehouse.sources.registry import adapter

    mod = adapter(name)
    doc = (mod.__doc__ or "").strip().splitlines()
    lines = [f"{name}: {doc[0] if doc else ''}"]
    for field_name, f in mod.Params.model_fields.items():
        ann = getattr(f.annotation, "__name__", None) or str(f.annotation).replace("typing.", "")
        if f.is_required():
            default = "required"
        elif f.default is PydanticUndefined:
            default = "default: (computed)"
        else:
            default = f"default: {json.dumps(f.default, default=str)}"
        lines.append(f"  {field_name:18} {ann:28} {default:24} {f.description or ''}".rstrip())
    lines.append(f"  example: {EXAMPLES.get(name, f'mps ingest {name} --params-file params.yaml')}")
    return lines


_VALUE_OPTIONS = {"--param", "-P", "--params-file", "--profile", "-p", "--lake"}


def _source_argument(args: list[str]) -> str | None:
    """The SOURCE argument of an ``mps ingest`` command line (skipping option values)."""
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg in _VALUE_OPTIONS:
            skip = True
        elif not arg.startswith("-"):
            return arg
    return None


def ingest_command_class():
    """A typer command class for ``mps ingest``: ``mps ingest SOURCE --help`` ends with the adapter's
    parameters (descriptions, defaults) and an example, as ``mps sources SOURCE`` prints them."""
    from typing import Any

    import typer
    from typer.core import TyperCommand

    from core.errors import MpsError

    class IngestCommand(TyperCommand):
        def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
            if "--help" in args:
                ctx.meta["mps.source"] = _source_argument(args)
            return super().parse_args(ctx, args)

        def format_help(self, ctx: Any, formatter: Any) -> None:
            super().format_help(ctx, formatter)
            source = ctx.meta.get("mps.source")
            if not source:
                return
            try:
                lines = ["", "Parameters of this source (pass each as -P key=value):", *describe(source)]
            except MpsError as exc:
                lines = ["", f"{exc} (see `mps sources`)"]
            typer.echo("\n".join(lines))

    return IngestCommand
