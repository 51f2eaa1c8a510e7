"""CLI: ``mps up``, ``mps down``, ``mps status``, ``mps api``, ``mps token``."""

from __future__ import annotations

import typer

from core.errors import MpsError


def register(app: typer.Typer) -> None:
    """Add the stack and API commands to ``app``."""
    from mps.cli import ProfileOpt, _fail, console

    @app.command()
    def up(
        profile: str = ProfileOpt,
        only: list[str] = typer.Option([], "--only", help="start only these services (repeatable)"),
        free_ports: bool = typer.Option(False, "--free-ports", help="pick free ports instead of the defaults"),
        timeout: float = typer.Option(300.0, help="seconds to wait for every health check"),
    ) -> None:
        """Start the local stack: NATS, Prefect server + deployments, MLflow UI, scorer, sink, API."""
        from core.profile import load_profile
        from mps.stack import stack_dir
        from mps.stack import up as stack_up

        try:
            prof = load_profile(profile)
            stack_up(prof, profile, set(only) or None, free_ports, timeout, echo=console.print)
        except MpsError as exc:
            _fail(exc)
            return
        console.print(f"up; `mps status` to check, `mps down` to stop; logs in {stack_dir(prof) / 'logs'}")
        console.print("API token: `mps token --scope read:bars --scope read:signals`")

    @app.command()
    def down(profile: str = ProfileOpt) -> None:
        """Stop the local stack (every process `mps up` started, and their children)."""
        from core.profile import load_profile
        from mps.stack import down as stack_down

        n = stack_down(load_profile(profile), echo=console.print)
        console.print("nothing was running" if n == 0 else f"down ({n} services)")

    @app.command()
    def status(profile: str = ProfileOpt) -> None:
        """Show each service of the local stack: pid, URL, health."""
        from core.profile import load_profile
        from mps.stack import healthy, read_state

        services = read_state(load_profile(profile))
        if not services:
            console.print("the stack is down (`mps up` starts it)")
            raise typer.Exit(1)
        bad = 0
        for s in services:
            ok = healthy(s)
            bad += not ok
            console.print(f"{s.name:8} {'[green]healthy[/]' if ok else '[red]DOWN[/]   '} pid {s.pid:<7} {s.url}")
        raise typer.Exit(1 if bad else 0)

    @app.command()
    def token(
        sub: str = typer.Option("local-user", help="client id (rate limits key on it)"),
        scope: list[str] = typer.Option(
            ["read:bars", "read:signals"], "--scope", help="read:bars, read:signals, admin"
        ),
        realtime: bool = typer.Option(True, help="realtime entitlement (else data is delayed)"),
        ttl: int = typer.Option(3600, help="lifetime in seconds"),
        profile: str = ProfileOpt,
    ) -> None:
        """Print a bearer token for the API, signed with the stack's key (MPS_API_KEYS or the generated one)."""
        import os

        from core.profile import load_profile
        from mps.api.auth import issue_token
        from mps.api.settings import settings_from_env
        from mps.stack import _api_keys, stack_dir

        prof = load_profile(profile)
        stack_dir(prof).mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "MPS_API_KEYS": _api_keys(stack_dir(prof))}
        try:
            print(issue_token(settings_from_env(prof, env), sub, scope, ttl_s=ttl, realtime=realtime))
        except (MpsError, ValueError) as exc:
            _fail(MpsError(str(exc)))

    @app.command()
    def api(profile: str = ProfileOpt, host: str | None = None, port: int | None = None) -> None:
        """Serve the HTTP API in the foreground (docs at /docs, OpenAPI at /openapi.json)."""
        import os

        import uvicorn

        from core.profile import load_profile

        prof = load_profile(profile)
        os.environ.setdefault("MPS_PROFILE", profile)
        uvicorn.run("mps.api.app:app_factory", factory=True, host=host or prof.api.host, port=port or prof.api.port)
