"""Promotion, rollback and canary: what changes when the gates say yes (and nothing when they say no).

Pass: the version's artifacts are copied to the local models directory, the champion pointer
(contracts/champion_pointer.schema.json) is written to the NATS KV bucket ``models`` under
``champion.<model_name>`` (the Rust scorer watches it and hot-swaps), and then the MLflow alias
``champion`` moves to the version (the pointer first: if NATS is down, the registry does not claim
a champion that nothing serves). Fail: the version is tagged ``promotion.status=refused`` with
the reasons; the alias and the pointer are untouched. Rollback: the previous champion in the
registered model's history gets the alias and the pointer back. Shadow: ``shadow`` writes a
version's pointer under ``challenger.<model_name>`` instead; the scorer scores it beside the
champion and publishes its signals on the shadow subject only (``clear_shadow`` stops it).

``publish`` is any callable taking the pointer dict; ``nats_publisher(url)`` is the real one.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.errors import MpsError
from feature_store.model_contract import read_metadata
from training.gates import Decision, ece, prob_up, realised_up, sample_log_score
from training.onnx_export import champion_pointer
from training.tracking import CHALLENGER, CHAMPION, Tracker

Publish = Callable[[dict], None]


class PromotionError(MpsError):
    """A promotion or rollback could not be carried out (no previous champion, pointer not written)."""


@dataclass(frozen=True)
class Outcome:
    """What a promotion attempt did."""

    model_name: str
    version: str
    promoted: bool
    previous: str | None
    reasons: tuple[str, ...]
    pointer: dict | None


def _on_nats(url: str, timeout_s: float, action: Callable) -> None:
    """Connect to NATS, await ``action(jetstream)`` and close: one short-lived client per pointer change."""
    import nats

    async def go() -> None:
        nc = await nats.connect(url, connect_timeout=timeout_s, max_reconnect_attempts=1)
        try:
            await action(nc.jetstream())
        finally:
            await nc.close()

    asyncio.run(go())


def nats_publisher(url: str, timeout_s: float = 10.0, role: str = CHAMPION) -> Publish:
    """A ``publish`` that writes the ``role`` pointer (champion or challenger) to the NATS KV bucket ``models``."""
    if role not in (CHAMPION, CHALLENGER):
        raise PromotionError(f"pointer role {role!r}: expected {CHAMPION!r} or {CHALLENGER!r}")

    def publish(pointer: dict) -> None:
        from feature_store.messages import put_challenger, put_champion

        put = put_champion if role == CHAMPION else put_challenger
        _on_nats(url, timeout_s, lambda js: put(js, pointer))

    return publish


def clear_shadow(url: str, model_name: str, timeout_s: float = 10.0) -> None:
    """Delete ``model_name``'s challenger pointer in NATS KV: the running scorer stops shadow scoring."""
    from feature_store.messages import clear_challenger

    _on_nats(url, timeout_s, lambda js: clear_challenger(js, model_name))


def shadow(tracker: Tracker, model_name: str, version: str, *, models_dir: Path, publish: Publish, at_ns: int) -> dict:
    """Point the running scorer's shadow slot at ``version`` (``publish`` writes the challenger pointer).

    Nothing else changes: no alias moves, and the scorer publishes the challenger's signals on the
    shadow subject only, so a canary can compare it with the champion on live windows first.
    """
    return _serve(tracker, model_name, version, models_dir, publish, at_ns, role=CHALLENGER)


def apply_decision(
    tracker: Tracker,
    model_name: str,
    version: str,
    decision: Decision,
    *,
    models_dir: Path,
    publish: Publish,
    promoted_at_ns: int,
) -> Outcome:
    """Promote ``version`` if ``decision`` passed, else record why not; see the module docstring."""
    previous = tracker.alias(model_name, CHAMPION)
    record = {"promotion.decision": json.dumps(decision.to_dict(), default=float)[:5000]}
    if not decision.passed:
        tracker.tag_version(
            model_name,
            version,
            {**record, "promotion.status": "refused", "promotion.reasons": json.dumps(decision.reasons)[:5000]},
        )
        return Outcome(model_name, version, False, previous, tuple(decision.reasons), None)
    pointer = _serve(tracker, model_name, version, models_dir, publish, promoted_at_ns)
    tracker.set_champion(model_name, version)
    tracker.tag_version(
        model_name, version, {**record, "promotion.status": "champion", "promotion.at_ns": str(promoted_at_ns)}
    )
    return Outcome(model_name, version, True, previous, (), pointer)


def rollback(tracker: Tracker, model_name: str, *, models_dir: Path, publish: Publish, promoted_at_ns: int) -> Outcome:
    """Restore the previous champion (alias and KV pointer); the current one is tagged rolled back."""
    history = tracker.history(model_name)
    current = tracker.alias(model_name, CHAMPION)
    if len(history) < 2:
        raise PromotionError(f"{model_name}: no previous champion to roll back to (history {history})")
    previous = history[-2]
    pointer = _serve(tracker, model_name, previous, models_dir, publish, promoted_at_ns)
    tracker.set_champion(model_name, previous, history=history[:-1])
    tracker.tag_version(model_name, previous, {"promotion.at_ns": str(promoted_at_ns)})  # its live windows restart
    if current is not None:
        tracker.tag_version(model_name, current, {"promotion.status": "rolled_back"})
    return Outcome(model_name, previous, True, current, (f"rolled back from v{current}",), pointer)


def _serve(
    tracker: Tracker, name: str, version: str, models_dir: Path, publish: Publish, at_ns: int, role: str = CHAMPION
) -> dict:
    onnx_path = tracker.materialise(name, version, models_dir)
    meta = read_metadata(onnx_path)
    if meta.model_name != name:
        raise PromotionError(f"{onnx_path}: metadata model_name {meta.model_name!r} != registered name {name!r}")
    pointer = {**champion_pointer(onnx_path, meta, at_ns), "model_version": str(version)}
    if meta.model_version != str(version):
        raise PromotionError(
            f"{onnx_path}: metadata model_version {meta.model_version!r} != registry version {version!r} "
            "(export with the version the registry will give, see flows/train.py)"
        )
    try:
        publish(pointer)
    except Exception as exc:  # the pointer is the promotion: without it nothing else may change
        raise PromotionError(f"{name} v{version}: {role} pointer not written: {exc}") from exc
    return pointer


@dataclass(frozen=True)
class CanaryResult:
    """Champion vs challenger on the same live windows."""

    n: int
    ece_champion: float
    ece_challenger: float
    log_score_champion: float
    log_score_challenger: float
    rollback: bool
    reasons: tuple[str, ...]


def canary_check(
    champion: np.ndarray, challenger: np.ndarray, y: np.ndarray, edges_bps: np.ndarray, cfg
) -> CanaryResult:
    """Compare forecasts (N, H, K) on realised buckets ``y`` (N, H); ``cfg`` is ``Promotion.canary``.

    Roll back when the challenger's worst-horizon ECE rises, or its mean log score falls, past the
    thresholds; with fewer than ``min_samples`` windows nothing is decided.
    """
    up = realised_up(y, edges_bps)

    def worst_ece(p: np.ndarray) -> float:
        pu = prob_up(p, edges_bps)
        return max(ece(pu[:, h], up[:, h]) for h in range(y.shape[1]))

    e0, e1 = worst_ece(champion), worst_ece(challenger)
    l0, l1 = float(sample_log_score(champion, y).mean()), float(sample_log_score(challenger, y).mean())
    reasons = []
    if len(y) >= cfg.min_samples:
        if e1 - e0 > cfg.max_ece_rise:
            reasons.append(f"ECE rose {e0:.4f} -> {e1:.4f} (max rise {cfg.max_ece_rise})")
        if l1 - l0 > cfg.max_log_score_drop:
            reasons.append(f"log score fell {l0:.4f} -> {l1:.4f} nats (max drop {cfg.max_log_score_drop})")
    return CanaryResult(len(y), e0, e1, l0, l1, bool(reasons), tuple(reasons))


def judge(
    tracker: Tracker,
    model_name: str,
    version: str,
    cfg,
    *,
    work_dir: Path,
    sharpe=None,
    measure_latency: bool = True,
) -> Decision:
    """Gather a registered version's evidence and judge it against the champion and its baselines.

    The evidence (held-out windows, labels, days, baseline forecasts) is the run's ``evidence``
    artifact; candidate and champion are both run from their ONNX files on the same windows. A
    champion that cannot read these windows (another feature set or lookback) is not compared.
    """
    from training.candidate import load_evidence
    from training.gates import evaluate_gates, onnx_latency_ms
    from training.onnx_export import run_onnx

    cand_path = tracker.materialise(model_name, version, work_dir / "candidate")
    meta = read_metadata(cand_path)
    ev = load_evidence(tracker.evidence(model_name, version, work_dir / "evidence"))
    X, y, days = ev["X"], ev["y"], ev["days"]
    baselines = {k.removeprefix("probs."): v for k, v in ev.items() if k.startswith("probs.") and k != "probs.model"}
    champion = None
    champ_v = tracker.alias(model_name, CHAMPION)
    if champ_v is not None and champ_v != version:
        champ_path = tracker.materialise(model_name, champ_v, work_dir / "champion")
        cm = read_metadata(champ_path)
        same = (cm.feature_names, cm.lookback, cm.horizons, cm.bucket_edges_bps) == (
            meta.feature_names,
            meta.lookback,
            meta.horizons,
            meta.bucket_edges_bps,
        )
        champion = run_onnx(champ_path, X) if same else None
    latency = onnx_latency_ms(cand_path)[1] if measure_latency else None
    return evaluate_gates(
        run_onnx(cand_path, X),
        y,
        days,
        np.asarray(meta.bucket_edges_bps),
        cfg,
        champion=champion,
        baselines=baselines,
        latency_p99_ms=latency,
        sharpe=sharpe,
        horizon_steps=horizon_steps(meta),
        series=ev.get("series"),
    )


def horizon_steps(meta) -> tuple[int, ...]:
    """Each horizon of ``meta`` in decision steps of its timeframe (the evidence holds one window per step)."""
    from core.timetypes import tf_ns

    if meta.horizon_unit != "s":
        return tuple(max(int(h), 1) for h in meta.horizons)
    step = tf_ns(meta.tf) or 1_000_000_000
    return tuple(max(round(h * 1_000_000_000 / step), 1) for h in meta.horizons)


def canary_after_promotion(
    tracker: Tracker,
    model_name: str,
    X: np.ndarray,
    y: np.ndarray,
    cfg,
    *,
    models_dir: Path,
    publish: Publish,
    promoted_at_ns: int,
) -> CanaryResult:
    """Score the current champion and the one before it on live windows ``X`` with realised ``y``;
    roll back automatically when ``canary_check`` says so. ``cfg`` is ``Promotion.canary``."""
    from training.onnx_export import run_onnx

    history = tracker.history(model_name)
    if len(history) < 2:
        raise PromotionError(f"{model_name}: no previous champion to compare the canary with")
    current, previous = history[-1], history[-2]
    new = run_onnx(tracker.materialise(model_name, current, models_dir), X)
    old_path = tracker.materialise(model_name, previous, models_dir)
    result = canary_check(run_onnx(old_path, X), new, y, np.asarray(read_metadata(old_path).bucket_edges_bps), cfg)
    tracker.tag_version(model_name, current, {"canary": json.dumps(result.__dict__, default=float)[:5000]})
    if result.rollback:
        rollback(tracker, model_name, models_dir=models_dir, publish=publish, promoted_at_ns=promoted_at_ns)
    return result
