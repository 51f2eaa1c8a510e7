"""Promote flow: judge the challenger (or a given version) with the strategy's gates, then promote or refuse.

Thin: ``training.promotion.judge`` gathers the evidence and applies the gates; ``apply_decision``
moves the alias and the NATS champion pointer only when every gate passes. ``rollback`` restores
the previous champion.

The Sharpe gate's evidence is built here (training does not import backtest): the windows of the
candidate's held-out test days are read back from gold (the same ``load_windows`` training used),
run through the candidate's ONNX file, and the sizing horizon's distributions are traded over the
silver bars of those days with the strategy's sizing, costs and guards (``backtest.forecast_sharpe``).
A caller may still pass ``sharpe`` figures; when no evidence can be built (no gold windows or bars
for those days) the gate is skipped and says why.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import replace
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
    backtest: bool = True,
    lake_root: str | None = None,
    symbols: list[str] | None = None,
) -> dict:
    """Judge ``version`` (default: the ``challenger``) of ``model_name``; promote it if it passes.

    With ``backtest`` (default) and no ``sharpe`` given, the Sharpe gate's evidence is a backtest of
    the version's out-of-sample forecasts on the lake (``lake_root`` or the profile's).
    """
    from lakehouse.storage import Lake
    from training.gates import SharpeEvidence, sharpe_gate
    from training.promotion import PromotionError, apply_decision, judge, nats_publisher
    from training.tracking import CHALLENGER, Tracker

    prof = load_profile(profile)
    strategy = load_strategy(Path(strategy_path) if strategy_path else DEFAULT_STRATEGY)
    cfg = strategy.promotion
    tracker = Tracker.from_profile(prof)
    version = version or tracker.alias(model_name, CHALLENGER)
    if version is None:
        raise PromotionError(f"{model_name}: no version given and no challenger registered")
    with tempfile.TemporaryDirectory() as work:
        evidence, why = SharpeEvidence(**sharpe) if sharpe else None, "no backtest evidence given"
        if evidence is None and backtest:
            lake = Lake.from_profile(prof, root=lake_root)
            evidence, why = backtest_evidence(lake, strategy, tracker, model_name, version, Path(work), symbols)
        decision = judge(
            tracker, model_name, version, cfg, work_dir=Path(work), sharpe=evidence, measure_latency=measure_latency
        )
        if evidence is None:  # say why the gate was skipped
            gate = sharpe_gate(None, cfg.min_sharpe_lower, why)
            decision = replace(decision, gates=tuple(gate if g.name == "sharpe" else g for g in decision.gates))
    _record_ece(Lake.from_profile(prof, root=lake_root), decision, model_name, version)
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


def _record_ece(lake, decision, model_name: str, version: str) -> None:
    """The judged version's worst-horizon ECE into gold.monitoring (exported as ``ece`` by the API)."""
    from prefect.runtime import flow_run

    from lakehouse.monitoring import record_metrics

    gate = next((g for g in decision.gates if g.name == "ece" and g.value is not None), None)
    if gate is None:
        return
    run_id = flow_run.id or f"{model_name}/{version}/{_ns()}"
    record_metrics(
        lake,
        {"ece": gate.value},
        ts=utc_clock(),
        source="promote",
        run_id=run_id,
        model=model_name,
        model_version=version,
    )


def backtest_evidence(lake, strategy, tracker, model_name: str, version: str, work: Path, symbols=None):
    """Backtest ``version``'s forecasts on its held-out test days; return (SharpeEvidence or None, why not)."""
    import numpy as np
    import polars as pl
    import pyarrow.compute as pc

    from backtest.forecast_sharpe import forecast_sharpe
    from backtest.sizing import SizingConfig
    from backtest.targets import hold_steps
    from core.errors import MpsError
    from feature_store.model_contract import read_metadata
    from lakehouse.storage import ts_value
    from lakehouse.tables import SILVER_BARS
    from training.candidate import load_evidence
    from training.dataset import load_windows
    from training.gates import SharpeEvidence
    from training.onnx_export import run_onnx

    onnx = tracker.materialise(model_name, version, work / "sharpe-model")
    meta = read_metadata(onnx)
    test_days = np.unique(load_evidence(tracker.evidence(model_name, version, work / "sharpe-evidence"))["days"])
    run = tracker.client().get_run(tracker.client().get_model_version(model_name, version).run_id)
    label_set = run.data.params.get("label_set") or ("ret_tick_v1" if meta.horizon_unit == "s" else "ret_bars_v1")
    try:
        data = load_windows(lake, meta.feature_set, label_set, meta.horizons, meta.lookback, symbols)
    except MpsError as exc:
        return None, f"no gold windows to backtest ({exc})"
    test = np.isin(data["days"], test_days)
    if not test.any():
        return None, f"gold holds none of the test days {test_days.tolist()}"
    keys = data["keys"].filter(pl.Series(test))
    sizing = SizingConfig.load(strategy.sizing_path(model_name))
    h = meta.horizons.index(sizing.horizon) if sizing.horizon in meta.horizons else 0
    probs = run_onnx(onnx, data["X"][test])[:, h, :]
    hold = hold_steps(meta.horizons, meta.horizon_unit, meta.tf, sizing.horizon)
    lo, hi = keys["ts"].min(), keys["ts"].max()
    flt = pc.field("symbol_id").isin(keys["symbol_id"].unique().to_list()) & (pc.field("tf") == meta.tf)
    flt &= (pc.field("adjustment") == "raw") & (pc.field("ts") >= ts_value(lo))
    flt &= pc.field("ts") <= ts_value(hi) + int(max(meta.horizons)) * _unit_ns(meta)
    cols = ["symbol_id", "ts", "open", "high", "low", "close", "volume"]
    bars = lake.read(SILVER_BARS, columns=cols, filter=flt)
    if bars.height == 0:
        return None, f"no silver {meta.tf} bars for the test days {test_days.tolist()}"
    fs = forecast_sharpe(
        probs, keys["symbol_id"].to_numpy(), keys["ts"], bars, np.asarray(meta.bucket_edges_bps), sizing,
        strategy.backtest, model_version=f"{model_name}:{version}",
        hold=hold,
    )  # fmt: skip
    note = (
        f"{fs.signals} forecasts of horizon {meta.horizons[h]}{meta.horizon_unit} on {len(test_days)} held-out days, "
        f"{fs.trades} trades, mean |size| {fs.mean_abs_size:.4f} NAV, each size held {hold} forecasts; Sharpe of "
        f"{fs.periods} per-minute NAV returns, block bootstrap of {fs.block}; backtest run {fs.run_id[:12]}"
    )
    return SharpeEvidence(fs.sharpe, fs.lower, fs.upper, fs.sigma, fs.sessions, note), ""


def _unit_ns(meta) -> int:
    """One horizon unit in ns: a second for tick models, one bar of the model's timeframe otherwise."""
    from core.timetypes import DAY_NS, tf_ns

    if meta.horizon_unit == "s":
        return 1_000_000_000
    return tf_ns(meta.tf) or 4 * DAY_NS  # a session bar ("1d"): allow for weekends and holidays


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


@flow(name="shadow")
def shadow_challenger(
    model_name: str,
    version: str | None = None,
    clear: bool = False,
    profile: str = "local",
    nats_url: str | None = None,
) -> dict:
    """Shadow-score ``version`` (default: the ``challenger`` alias) in the running scorer, or stop with ``clear``."""
    from training.promotion import PromotionError, clear_shadow, nats_publisher, shadow
    from training.tracking import CHALLENGER, Tracker

    prof = load_profile(profile)
    url = nats_url or prof.nats.url
    if clear:
        clear_shadow(url, model_name)
        return {"model_name": model_name, "shadow": None}
    tracker = Tracker.from_profile(prof)
    version = version or tracker.alias(model_name, CHALLENGER)
    if version is None:
        raise PromotionError(f"{model_name}: no version given and no challenger registered")
    pointer = shadow(
        tracker,
        model_name,
        version,
        models_dir=Path(prof.state_dir) / "models",
        publish=nats_publisher(url, role=CHALLENGER),
        at_ns=_ns(),
    )
    return {"model_name": model_name, "shadow": version, "onnx_uri": pointer["onnx_uri"]}
