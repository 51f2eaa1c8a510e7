"""Serve every MPS flow as a Prefect deployment on the strategy's cron schedules.

``python -m deployments.serve`` (or ``mps up``) registers the deployments below with the Prefect
API of the active profile and runs their scheduled and manual runs in this process (Prefect's
``serve``: no work pool needed). ``deployments/prefect.yaml`` declares the same deployments for
``prefect deploy`` with a process work pool; ``tests/deployments/test_serve.py`` keeps the two equal.

Schedules come from the strategy file's ``schedules`` section (``ingest``, ``reconcile``); the
strategy has no entry for continuous futures, which run once a day after the CME close
(``CONTINUOUS_CRON``). Default parameters run the demo: the simulator's vendors for the strategy's
universe, reconciled over a rolling window twice the reconcile period (every window is
reconciled twice, so prints that arrive late get a second pass; writes are idempotent).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python deployments/serve.py` from anywhere
    sys.path.insert(0, str(ROOT))

from core.strategy import Strategy, load_strategy  # noqa: E402
from flows.continuous_futures import continuous_futures  # noqa: E402
from flows.ingest import ingest  # noqa: E402
from flows.reconcile import reconcile  # noqa: E402

CONTINUOUS_CRON = "0 23 * * 1-5"
TIMEZONE = "UTC"
SIM_START = "2026-01-05"


def period_minutes(cron: str) -> int:
    """The period of an every-N-minutes cron ("*/15 * * * *" -> 15); an hour for any other schedule."""
    minute, *rest = cron.split()
    if minute.startswith("*/") and all(f == "*" for f in rest):
        return int(minute[2:])
    return 1 if minute == "*" and all(f == "*" for f in rest) else 60


def parameters(strategy: Strategy, profile: str = "local") -> dict[str, dict]:
    """Default parameters of each deployment, keyed by flow name."""
    symbols = list(strategy.universe.symbols)
    return {
        "ingest": {
            "source": "simulator",
            "profile": profile,
            "params": {"symbols": symbols, "start": SIM_START, "n_days": 1},
        },
        "reconcile": {
            "timeframes": ["1m", "1h", "1d"],
            "symbols": symbols,
            "profile": profile,
            "lookback_minutes": 2 * period_minutes(strategy.schedules.reconcile),
        },
        "continuous-futures": {
            "roots": ["ES:CME"],
            "tfs": ["1d"],
            "rules": ["open_interest"],
            "methods": ["none", "panama", "ratio"],
            "profile": profile,
        },
    }


def schedules(strategy: Strategy) -> dict[str, str]:
    """The cron schedule of each deployment, keyed by flow name."""
    return {
        "ingest": strategy.schedules.ingest,
        "reconcile": strategy.schedules.reconcile,
        "continuous-futures": CONTINUOUS_CRON,
    }


DEPLOYMENT_NAMES = {"ingest": "simulator", "reconcile": "rolling", "continuous-futures": "daily"}
FLOWS = {"ingest": ingest, "reconcile": reconcile, "continuous-futures": continuous_futures}


def deployments(strategy: Strategy | None = None, profile: str = "local") -> list:
    """Build one ``RunnerDeployment`` per flow with its cron schedule and default parameters."""
    from prefect.schedules import Cron

    strategy = strategy or load_strategy()
    params, crons = parameters(strategy, profile), schedules(strategy)
    out = []
    for name, flow in FLOWS.items():
        out.append(
            flow.to_deployment(
                name=DEPLOYMENT_NAMES[name],
                schedules=[Cron(crons[name], timezone=TIMEZONE)],
                parameters=params[name],
                description=(flow.description or "").split("\n")[0],
                tags=["mps", f"strategy:{strategy.name}"],
            )
        )
    return out


def main() -> None:
    """Register the deployments and serve their runs until interrupted."""
    from prefect import serve

    serve(*deployments())


if __name__ == "__main__":
    main()
