"""Serve every MPS flow as a Prefect deployment on the strategy's cron schedules.

``python -m deployments.serve`` (or ``mps up``) registers the deployments below with the Prefect
API of the active profile and runs their scheduled and manual runs in this process (Prefect's
``serve``: no work pool needed). ``deployments/prefect.yaml`` declares the same deployments for
``prefect deploy`` with a process work pool; ``tests/deployments/test_serve.py`` keeps the two equal.

Schedules come from the strategy file's ``schedules`` section (``ingest``, ``reconcile``, ``train``);
the others are set here (continuous futures after the CME close, the pipeline and the backtest after
the New York close). Every parameter is defaulted, so each deployment also runs from the Prefect
UI's Run button. Default parameters do real work on the default data: scheduled runs take their
window from the lake (``catch_up``, see ``flows/watermarks.py``): ingest simulates the next session
bronze lacks (up to the run's date), reconcile the span bronze holds beyond silver, featurize the
span silver holds beyond gold; the backtest trades the strategy's model's signals in gold; the
pipeline runs ingest -> reconcile -> featurize -> train -> promote -> backtest for that model.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python deployments/serve.py` from anywhere
    sys.path.insert(0, str(ROOT))

from core.strategy import Strategy, load_strategy  # noqa: E402
from flows.backtest import backtest  # noqa: E402
from flows.continuous_futures import continuous_futures  # noqa: E402
from flows.featurize import featurize  # noqa: E402
from flows.ingest import ingest  # noqa: E402
from flows.landing import landing  # noqa: E402
from flows.maintain import maintain  # noqa: E402
from flows.reconcile import reconcile  # noqa: E402

if TYPE_CHECKING:
    from prefect import Flow

CONTINUOUS_CRON = "0 23 * * 1-5"
FEATURIZE_CRON = "20 * * * *"  # hourly, after the quarter-hour reconciles
MAINTAIN_CRON = "30 3 * * *"  # nightly table upkeep (compact, checkpoint, vacuum), a quiet hour
PIPELINE_CRON = "30 22 * * 1-5"  # weekdays after the New York close (21:00 UTC in winter)
BACKTEST_CRON = "30 23 * * 1-5"  # after the pipeline: the day's signals are in gold
TIMEZONE = "UTC"
LANDING_CRON = "*/10 * * * *"  # a sweep of the landing zone in case a webhook was lost
DRIFT_CRON = "45 * * * *"  # hourly: the last hour of gold against the champion's reference
CANARY_CRON = "50 * * * *"  # hourly: the champion against its predecessor on the windows since promotion
VENDOR_FILE_EVENT = "mps.webhook.vendor-file"
LANDING_PARAMS = {"tabular": {"mapping": "yahoo_daily"}}


def parameters(strategy: Strategy, profile: str = "local") -> dict[str, dict]:
    """Default parameters of each deployment, keyed by flow name."""
    symbols = list(strategy.universe.symbols)
    return {
        "ingest": {"source": "simulator", "profile": profile, "params": {"symbols": symbols}, "catch_up": True},
        "reconcile": {"timeframes": ["1m", "1h", "1d"], "symbols": symbols, "profile": profile, "catch_up": True},
        "continuous-futures": {
            "roots": ["ES:CME"],
            "tfs": ["1d"],
            "rules": ["open_interest"],
            "methods": ["none", "panama", "ratio"],
            "profile": profile,
        },
        "featurize": {
            "tf": "1d",
            "feature_sets": ["bar_v1"],
            "symbols": symbols,
            "profile": profile,
            "catch_up": True,
        },
        "maintain": {"profile": profile, "retention_hours": 168},
        "backtest": {"model": strategy.models[0].name, "symbols": symbols, "profile": profile},
    }


def schedules(strategy: Strategy) -> dict[str, str]:
    """The cron schedule of each deployment, keyed by flow name."""
    return {
        "ingest": strategy.schedules.ingest,
        "reconcile": strategy.schedules.reconcile,
        "continuous-futures": CONTINUOUS_CRON,
        "featurize": FEATURIZE_CRON,
        "maintain": MAINTAIN_CRON,
        "backtest": BACKTEST_CRON,
    }


# Run by module path, not as a script: Prefect loads a script entrypoint under its file name, and
# ``flows/backtest.py`` loaded as module ``backtest`` hides the ``backtest`` package it imports.
MODULE_PATH_FLOWS = {"backtest"}
DEPLOYMENT_NAMES = {
    "ingest": "simulator",
    "reconcile": "rolling",
    "continuous-futures": "daily",
    "featurize": "hourly",
    "maintain": "nightly",
    "backtest": "default",
}
FLOWS: dict[str, Flow[..., Any]] = {
    "ingest": ingest,
    "reconcile": reconcile,
    "continuous-futures": continuous_futures,
    "featurize": featurize,
    "maintain": maintain,
    "backtest": backtest,
}


def landing_trigger():
    """Run the landing flow on the file a ``vendor-file`` webhook names (API -> Prefect event -> run)."""
    from prefect.events import DeploymentEventTrigger

    return DeploymentEventTrigger(
        name="vendor-file-arrived",
        expect={VENDOR_FILE_EVENT},
        match={"prefect.resource.id": "mps.webhook.vendor-file"},
        parameters={"key": "{{ event.payload.key }}"},
    )


def training_deployments(strategy: Strategy, profile: str = "local") -> list:
    """``train/nightly`` (strategy's train cron, and a trigger: ``mps.drift.detected`` retrains the drifted
    model), ``promote/default`` (run on demand: the API's /governance/promote, the UI, ``mps promote``),
    ``drift-check/hourly`` (emits ``mps.drift.detected`` when gold drifts from the champion's reference),
    ``canary/hourly`` (rolls back a champion worse than its predecessor on live windows)
    and ``pipeline/daily`` (every step in order for the strategy's first model, after the close)."""
    from prefect.events import DeploymentEventTrigger
    from prefect.schedules import Cron

    from flows.canary import canary
    from flows.drift import drift_check
    from flows.pipeline import pipeline
    from flows.promote import promote
    from flows.train import train
    from training.drift import DRIFT_EVENT

    retrain = DeploymentEventTrigger(
        name="retrain-on-drift",
        expect={DRIFT_EVENT},
        match={"prefect.resource.id": "mps.model.*"},
        parameters={"model_name": "{{ event.resource['mps.model'] }}", "profile": profile},
    )
    first = strategy.models[0].name
    return [
        train.to_deployment(
            name="nightly",
            schedules=[Cron(strategy.schedules.train, timezone=TIMEZONE)],
            parameters={"model_name": first, "profile": profile},
            triggers=[retrain],
            tags=["mps", f"strategy:{strategy.name}"],
        ),
        promote.to_deployment(
            name="default", parameters={"model_name": first, "profile": profile}, tags=["mps", "governance"]
        ),
        drift_check.to_deployment(
            name="hourly",
            schedules=[Cron(DRIFT_CRON, timezone=TIMEZONE)],
            parameters={"model_name": first, "profile": profile},
            description=(drift_check.description or "").split("\n")[0],
            tags=["mps", f"strategy:{strategy.name}"],
        ),
        canary.to_deployment(
            name="hourly",
            schedules=[Cron(CANARY_CRON, timezone=TIMEZONE)],
            parameters={"model_name": first, "profile": profile},
            description=(canary.description or "").split("\n")[0],
            tags=["mps", f"strategy:{strategy.name}"],
        ),
        pipeline.to_deployment(
            name="daily",
            schedules=[Cron(PIPELINE_CRON, timezone=TIMEZONE)],
            parameters={"model_name": first, "profile": profile},
            description=(pipeline.description or "").split("\n")[0],
            tags=["mps", f"strategy:{strategy.name}"],
        ),
    ]


def deployments(
    strategy: Strategy | None = None,
    profile: str = "local",
    *,
    training: bool = False,
    landing_endpoint: str | None = None,
    landing_bucket: str = "mps-landing",
    lake_root: str | None = None,
    only: set[str] | None = None,
) -> list:
    """Build one ``RunnerDeployment`` per flow with its cron schedule and default parameters.

    The landing deployment exists when a landing endpoint (S3/MinIO ``host:port``) is given; its
    trigger starts it on every ``mps.webhook.vendor-file`` event. ``lake_root`` overrides the
    profile's lake in every deployment (tests); ``only`` keeps the named flows.
    """
    from prefect.schedules import Cron
    from prefect.types.entrypoint import EntrypointType

    strategy = strategy or load_strategy()
    params, crons = parameters(strategy, profile), schedules(strategy)
    out = []
    for name, flow in FLOWS.items():
        if only and name not in only:
            continue
        out.append(
            flow.to_deployment(
                name=DEPLOYMENT_NAMES[name],
                entrypoint_type=EntrypointType.MODULE_PATH if name in MODULE_PATH_FLOWS else EntrypointType.FILE_PATH,
                schedules=[Cron(crons[name], timezone=TIMEZONE)],
                parameters={**params[name], **({"lake_root": lake_root} if lake_root else {})},
                description=(flow.description or "").split("\n")[0],
                tags=["mps", f"strategy:{strategy.name}"],
            )
        )
    if training:
        out += [d for d in training_deployments(strategy, profile) if not only or d.flow_name in only]
    if landing_endpoint and (not only or "landing" in only):
        landing_params = {"endpoint": landing_endpoint, "bucket": landing_bucket, "params": LANDING_PARAMS}
        out.append(
            landing.to_deployment(
                name="vendor-files",
                schedules=[Cron(LANDING_CRON, timezone=TIMEZONE)],
                parameters={**landing_params, "profile": profile, **({"lake_root": lake_root} if lake_root else {})},
                triggers=[landing_trigger()],
                description=(landing.description or "").split("\n")[0],
                tags=["mps", "landing"],
            )
        )
    return out


def main(argv: list[str] | None = None) -> None:
    """Register the deployments and serve their runs until interrupted."""
    import argparse

    from prefect import serve

    parser = argparse.ArgumentParser(description="serve the MPS deployments")
    parser.add_argument("--profile", default="local")
    parser.add_argument("--landing-endpoint", help="S3/MinIO host:port of the landing bucket")
    parser.add_argument("--landing-bucket", default="mps-landing")
    parser.add_argument("--lake-root", help="lake root overriding the profile's")
    parser.add_argument("--only", action="append", help="serve only these flows (repeatable)")
    args = parser.parse_args(argv)
    built = deployments(
        profile=args.profile,
        training=True,
        landing_endpoint=args.landing_endpoint,
        landing_bucket=args.landing_bucket,
        lake_root=args.lake_root,
        only=set(args.only) if args.only else None,
    )
    serve(*built, print_starting_message=True)


if __name__ == "__main__":
    main()
