"""Promote flow: judge the challenger (or a given version) with the strategy's gates, then promote or refuse.

Thin: ``training.promotion.judge`` gathers the evidence and applies the gates; ``apply_decision``
moves the alias and the NATS champion pointer only when every gate passes. ``rollback`` restores
the previous champion. Backtest evidence (the Sharpe gate) is passed in when the caller has it.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from prefect import flow

from core.clock import utc_clock
from core.profile import load_profile
from core.strategy import DEFAULT_STRATEGY, load_strategy


def _ns() -> int:
    return int(utc_clock().timestamp() * 1e9)


@flow(name="promote")
def promote(
    model_name: str,
    version: str | None = None,
    profile: str = "local",
    strategy_path: str | None = None,
    sharpe: dict | None = None,
    nats_url: str | None = None,
    measure_latency: bool = True,
) -> dict:
    """Judge ``version`` (default: the ``challenger``) of ``model_name``; promote it if it passes."""
    from training.gates import SharpeEvidence
    from training.promotion import PromotionError, apply_decision, judge, nats_publisher
    from training.tracking import CHALLENGER, Tracker

    prof = load_profile(profile)
    cfg = load_strategy(Path(strategy_path) if strategy_path else DEFAULT_STRATEGY).promotion
    tracker = Tracker.from_profile(prof)
    version = version or tracker.alias(model_name, CHALLENGER)
    if version is None:
        raise PromotionError(f"{model_name}: no version given and no challenger registered")
    with tempfile.TemporaryDirectory() as work:
        decision = judge(
            tracker,
            model_name,
            version,
            cfg,
            work_dir=Path(work),
            sharpe=SharpeEvidence(**sharpe) if sharpe else None,
            measure_latency=measure_latency,
        )
    outcome = apply_decision(
        tracker,
        model_name,
        version,
        decision,
        models_dir=Path(prof.state_dir) / "models",
        publish=nats_publisher(nats_url or prof.nats.url),
        promoted_at_ns=_ns(),
    )
    return {
        "model_name": model_name,
        "version": version,
        "promoted": outcome.promoted,
        "previous": outcome.previous,
        "reasons": list(outcome.reasons),
        "decision": json.loads(json.dumps(decision.to_dict(), default=float)),
    }


@flow(name="rollback")
def rollback_champion(model_name: str, profile: str = "local", nats_url: str | None = None) -> dict:
    """Restore the previous champion of ``model_name`` (alias and NATS pointer)."""
    from training.promotion import nats_publisher, rollback
    from training.tracking import Tracker

    prof = load_profile(profile)
    out = rollback(
        Tracker.from_profile(prof),
        model_name,
        models_dir=Path(prof.state_dir) / "models",
        publish=nats_publisher(nats_url or prof.nats.url),
        promoted_at_ns=_ns(),
    )
    return {"model_name": model_name, "version": out.version, "previous": out.previous}
