"""CLI: ``mps symbols add`` and ``mps symbols list``: the security master without editing the repository.

An added instrument is kept in the lake's bronze.security_master (``lakehouse.security_master``),
so ingest accepts its rows from then on. Plausibility rules (price band, tick grid) stay with the
declared instruments in ``configs/security_master``.
"""

from __future__ import annotations

import typer

from core.errors import MpsError


def register(app: typer.Typer) -> None:
    """Add the ``symbols`` command group to ``app``."""
    from mps.cli import LakeOpt, ProfileOpt, _fail, _lake, console

    symbols = typer.Typer(no_args_is_help=True, help="List the security master or add an instrument to it.")

    @symbols.command("add")
    def add(
        symbol_id: str = typer.Argument(..., help="ROOT:VENUE, e.g. NVDA:US, CL:NYM, ESZ5:CME"),
        asset_class: str = typer.Option(..., "--asset-class", help="equity, future, option, fx, crypto or index"),
        exchange: str = typer.Option(..., "--exchange", help="venue code, e.g. XNAS, XCME"),
        calendar: str = typer.Option(..., "--calendar", help="exchange_calendars name (XNYS, CMES) or 24/7, 24/5"),
        currency: str = typer.Option("USD", "--currency", help="ISO 4217 code"),
        tick_size: float = typer.Option(0.01, "--tick-size", help="minimum price increment"),
        multiplier: float = typer.Option(1.0, "--multiplier", help="contract multiplier"),
        lot_size: float = typer.Option(1.0, "--lot-size", help="minimum tradable quantity"),
        description: str | None = typer.Option(None, "--description", help="free text"),
        profile: str = ProfileOpt,
        lake_root: str | None = LakeOpt,
    ) -> None:
        """Add an instrument to the lake's security master (idempotent; a conflicting redefinition is refused).

        Example: mps symbols add NVDA:US --asset-class equity --exchange XNAS --calendar XNYS
        """
        from pydantic import ValidationError

        from core.clock import utc_clock
        from core.config import format_validation_error
        from core.errors import ConfigError
        from lakehouse.security_master import Instrument, add_instrument

        fields = dict(
            symbol_id=symbol_id,
            asset_class=asset_class,
            exchange=exchange,
            calendar=calendar,
            currency=currency,
            tick_size=tick_size,
            multiplier=multiplier,
            lot_size=lot_size,
            description=description,
        )
        try:
            try:
                inst = Instrument.model_validate(fields)
            except ValidationError as exc:
                raise ConfigError(format_validation_error(symbol_id, exc)) from exc
            written = add_instrument(_lake(profile, lake_root), inst, utc_clock)
        except MpsError as exc:
            _fail(exc)
            return
        console.print(f"{symbol_id}: {'added' if written else 'already in the security master (unchanged)'}")

    @symbols.command("list")
    def list_(profile: str = ProfileOpt, lake_root: str | None = LakeOpt) -> None:
        """List every instrument ingest accepts: declared in configs/security_master and added to the lake."""
        from lakehouse.security_master import all_instruments, load_instruments

        try:
            declared = {i.symbol_id for i in load_instruments()}
            instruments = all_instruments(_lake(profile, lake_root))
        except MpsError as exc:
            _fail(exc)
            return
        console.print(f"{'symbol_id':26} {'class':8} {'exchange':9} {'calendar':9} ccy  {'tick':>8} {'mult':>8}  where")
        for i in sorted(instruments, key=lambda i: i.symbol_id):
            where = "declared" if i.symbol_id in declared else "added"
            line = f"{i.symbol_id:26} {i.asset_class:8} {i.exchange:9} {i.calendar:9} {i.currency:4} "
            line += f"{i.tick_size:>8g} {i.multiplier:>8g}  {where}"
            console.print(line, highlight=False, markup=False, soft_wrap=True)
        console.print(f"{len(instruments)} instrument(s)")

    app.add_typer(symbols, name="symbols")
