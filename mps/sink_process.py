"""Run the signal sink (NATS signals -> gold.signals) as a service until SIGTERM: ``mps up`` starts it."""

from __future__ import annotations

import argparse
import asyncio
import signal


def main(argv: list[str] | None = None) -> None:
    """Consume signals from ``--nats`` into the profile's lake until SIGTERM or SIGINT (NATS may start later)."""
    from core.profile import load_profile
    from feature_store.signal_sink import run_sink
    from lakehouse.storage import Lake

    parser = argparse.ArgumentParser(description="MPS signal sink")
    parser.add_argument("--nats", required=True)
    parser.add_argument("--profile", default="local")
    args = parser.parse_args(argv)
    lake = Lake.from_profile(load_profile(args.profile))

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        stats = await run_sink(args.nats, lake, stop, on_ready=lambda: print("sink ready", flush=True))
        print(f"sink stopped: {stats}", flush=True)

    asyncio.run(run())


if __name__ == "__main__":
    main()
