"""``mps replay`` and ``mps featurizer``: put a bronze window on md.* and run the streaming featurizer.

Registered on the main app by ``mps.cli`` (``register(app)``); heavy imports stay inside the commands.

    mps replay --source lean --symbol BAC:US --start 2013-10-07T13:25 --end 2013-10-07T14:10 --speed 60
    mps featurizer --idle-exit 5          # consume MARKET_DATA, publish FeatureUpdates to FEATURES
    mps featurizer --engine python        # the Python featurizer (default: the Rust one when it is built)
"""

from __future__ import annotations

import asyncio

import typer

from core.errors import MpsError
from mps.cli_gold import _time


def _nats_url(profile: str, override: str | None) -> str:
    from core.profile import load_profile

    return override or load_profile(profile).nats.url


def register(app: typer.Typer) -> None:
    """Add the streaming commands to ``app``."""
    from mps.cli import LakeOpt, ProfileOpt, _fail, _lake, console

    @app.command()
    def replay(
        source: str = typer.Option(..., help="bronze source (vendor) whose ticks to replay"),
        start: str = typer.Option(..., help="window start, ISO-8601 UTC"),
        end: str = typer.Option(..., help="window end (exclusive), ISO-8601 UTC"),
        symbol: list[str] = typer.Option([], "--symbol", help="only these symbol_ids (repeatable)"),
        speed: float = typer.Option(0.0, help="market seconds per wall second (0: as fast as NATS takes them)"),
        nats_url: str | None = typer.Option(None, "--nats-url", help="NATS URL overriding the profile's"),
        profile: str = ProfileOpt,
        lake_root: str | None = LakeOpt,
    ) -> None:
        """Publish a bronze window of trades and quotes to md.trades.* / md.quotes.* (stream MARKET_DATA)."""
        import nats

        from feature_store.streaming.replay import replay_bronze

        async def run() -> int:
            nc = await nats.connect(_nats_url(profile, nats_url))
            try:
                lake = _lake(profile, lake_root)
                return await replay_bronze(
                    nc, lake, source, list(symbol) or None, _time(start), _time(end), speed or None
                )
            finally:
                await nc.close()

        try:
            sent = asyncio.run(run())
        except MpsError as exc:
            _fail(exc)
            return
        console.print(f"replayed {sent:,} market-data messages")

    @app.command()
    def featurizer(
        feature_set: str = typer.Option("tick_v2", help="registered per-second feature set"),
        consume: str = typer.Option("jetstream", help="jetstream (replayable, recovers) or core (live only)"),
        idle_exit: float | None = typer.Option(None, help="stop after this many idle seconds (default: run until ^C)"),
        heartbeat_lateness: float | None = typer.Option(
            None, help="live data: close seconds on the wall clock this many seconds after they end (off for replays)"
        ),
        publish_jetstream: bool = typer.Option(
            False, help="wait for FEATURES' ack of every update and re-send failures (nothing lost when NATS dies)"
        ),
        checkpoint_every: float = typer.Option(
            2.0, help="seconds between state checkpoints (a restart replays only what came after; 0: never)"
        ),
        nats_url: str | None = typer.Option(None, "--nats-url", help="NATS URL overriding the profile's"),
        engine: str = typer.Option(
            "auto", help="rust (serving-rs mps-featurizer), python, or auto: rust when its release binary is built"
        ),
        profile: str = ProfileOpt,
    ) -> None:
        """Run the streaming featurizer: MARKET_DATA in, one FeatureUpdate per symbol per second to FEATURES."""
        if _use_rust(engine, feature_set):
            url = _nats_url(profile, nats_url)
            _exec_rust(url, consume, idle_exit, heartbeat_lateness, publish_jetstream, checkpoint_every)

        from core.clock import utc_clock
        from feature_store.streaming.service import FeaturizerConfig, StreamingFeaturizer, connect

        async def run() -> dict:
            nc = await connect(_nats_url(profile, nats_url))
            try:
                cfg = FeaturizerConfig(
                    feature_set=feature_set,
                    consume=consume,
                    heartbeat_lateness_s=heartbeat_lateness,
                    publish_jetstream=publish_jetstream,
                    checkpoint_every_s=checkpoint_every,
                )
                service = StreamingFeaturizer(nc, cfg, clock=utc_clock)
                return await service.run(idle_exit_s=idle_exit)
            finally:
                await nc.close()

        try:
            counts = asyncio.run(run())
        except MpsError as exc:
            _fail(exc)
            return
        except KeyboardInterrupt:
            console.print("featurizer stopped (the next start resumes from its last checkpoint)")
            return
        console.print_json(data=counts)


def _use_rust(engine: str, feature_set: str) -> bool:
    """Whether ``mps featurizer`` runs the Rust binary (it embeds tick_v2 only)."""
    from mps.featurizer_process import featurizer_binary

    if engine not in ("auto", "rust", "python"):
        raise typer.BadParameter(f"--engine must be auto, rust or python, not {engine!r}")
    if engine == "python":
        return False
    if feature_set != "tick_v2":
        if engine == "rust":
            raise typer.BadParameter(f"the Rust featurizer computes tick_v2 only, not {feature_set!r}")
        return False
    return engine == "rust" or featurizer_binary(build=False).is_file()


def _exec_rust(
    url: str,
    consume: str,
    idle_exit: float | None,
    heartbeat_lateness: float | None,
    publish_jetstream: bool,
    checkpoint_every: float,
) -> None:
    """Replace this process with ``mps-featurizer`` (signals from ``mps up`` then reach it directly)."""
    import os

    from mps.featurizer_process import default_sessions, featurizer_binary

    binary = str(featurizer_binary(build=True))
    args = [binary, "--nats", url, "--sessions", str(default_sessions()), "--consume", consume]
    if idle_exit is not None:
        args += ["--idle-exit", str(idle_exit)]
    if heartbeat_lateness is not None:
        args += ["--heartbeat-lateness", str(heartbeat_lateness)]
    if publish_jetstream:
        args.append("--publish-jetstream")
    args += ["--checkpoint-every", str(checkpoint_every)]
    os.execv(binary, args)
