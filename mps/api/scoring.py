"""Scoring for the API: latest data through the Rust scorer (NATS request-reply), ``asof`` from gold.

``latest`` asks the scorer on the contract's request subject, so the service that publishes signals
also answers the API (one scoring implementation). ``asof`` rebuilds the model's input window from
gold (rows known at ``asof``) and runs the same ONNX file through the same onnxruntime library with
the Python reference signal (backtest.signal), which golden vectors keep equal to the Rust one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.compute as pc

from core.errors import ServiceError
from feature_store.contract import STREAMING
from lakehouse.storage import ts_value
from lakehouse.tables import TABLES
from mps.api.errors import ApiError

# The scorer's typed refusals (contracts/score_error.schema.json) -> HTTP status.
REFUSAL_STATUS = {"unknown_symbol": 404, "no_model": 404, "not_enough_history": 409, "bad_request": 400}


async def score_latest(services, symbol_id: str, tf: str | None, model_name: str) -> dict:
    """Ask the scorer serving ``model_name`` for its Signal on the current ring of ``symbol_id``.

    NATS request-reply on the contract's ``score_request`` subject of that model; the reply is the
    Signal (the JSON the scorer publishes) or a typed refusal, mapped to its HTTP status.
    """
    import nats.errors

    from mps.api.observability import inject_headers

    nc = await services.nats()
    subject = STREAMING.subject("score_request", model_name=model_name)
    body = json.dumps({"symbol_id": symbol_id, "tf": tf, "model_name": model_name}).encode()
    try:
        with services.tracer.start_as_current_span(
            "nats.request", attributes={"messaging.destination": subject}
        ) as span:
            headers = inject_headers({})
            msg = await nc.request(subject, body, timeout=services.settings.score_timeout_s, headers=headers or None)
            scorer_parent = (msg.headers or {}).get("traceparent")
            if scorer_parent:  # the scorer's score.request span, which continued this trace
                span.set_attribute("mps.scorer.traceparent", scorer_parent)
    except nats.errors.NoRespondersError:
        raise ApiError(
            503, "scorer_unavailable", f"no scorer serves model {model_name!r} on {subject!r} (is `mps up` running?)"
        ) from None
    except (nats.errors.TimeoutError, TimeoutError):
        raise ApiError(504, "scorer_timeout", f"the scorer did not answer on {subject!r} in time") from None
    try:
        reply = json.loads(msg.data)
    except ValueError:
        raise ApiError(502, "scorer_error", f"the scorer answered on {subject!r} with something not JSON") from None
    if not isinstance(reply, dict):
        raise ApiError(502, "scorer_error", f"the scorer answered on {subject!r} with a non-object")
    if "error" in reply:
        code = str(reply.get("code", "scorer_error"))
        raise ApiError(REFUSAL_STATUS.get(code, 502), code, str(reply["error"]))
    return reply


async def champion_onnx(services, model_name: str) -> str:
    """The ONNX path of ``model_name``'s champion: the settings' override, else the KV pointer."""
    if services.settings.model_path:
        return services.settings.model_path
    try:
        nc = await services.nats()
        kv = await nc.jetstream().key_value(STREAMING.models_bucket)
        entry = await kv.get(STREAMING.champion_key(model_name))
    except ServiceError:
        raise
    except Exception as exc:  # bucket or key missing
        raise ApiError(404, "no_champion", f"no champion pointer for {model_name!r}: {type(exc).__name__}") from None
    uri = json.loads(entry.value)["onnx_uri"]
    return uri.removeprefix("file://")


_CACHE_S = 1.0  # gold rows of a symbol are re-read at most once a second (point in time: old rows do not change)


@dataclass(frozen=True)
class SymbolRows:
    """One symbol's gold rows of a feature set as arrays, by ts: what ``asof`` slices per request."""

    ts: np.ndarray  # (N,) int64 ns
    known_at: np.ndarray  # (N,) int64 ns
    values: np.ndarray  # (N, F) float64 in the model's feature order


def _feature_rows(services, meta, symbol_id: str, asof: datetime) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ts, known_at, values) of the last L rows known at ``asof``, oldest first."""
    import time

    cut = ts_value(asof)
    key = (meta.feature_set, meta.tf, symbol_id)
    hit = services.feature_cache.get(key)
    if hit is None or time.monotonic() - hit[0] > _CACHE_S:
        df = _read_symbol(services.lake, meta, symbol_id)
        rows = SymbolRows(
            df["ts"].to_numpy(), df["known_at"].to_numpy(), df.select(meta.feature_names).to_numpy().astype(np.float64)
        )
        hit = (time.monotonic(), rows)
        services.feature_cache[key] = hit
    r: SymbolRows = hit[1]
    end = int(np.searchsorted(r.ts, cut, side="right"))  # rows with ts <= cut
    # rows are usually known soon after their ts: look back a few windows first, then everything
    for start in (max(0, end - 4 * meta.lookback), 0):
        idx = start + np.flatnonzero(r.known_at[start:end] <= cut)
        if len(idx) >= meta.lookback or start == 0:
            break
    idx = idx[-meta.lookback :]
    return r.ts[idx], r.known_at[idx], r.values[idx]


def _read_symbol(lake, meta, symbol_id: str) -> pl.DataFrame:
    """Every row of ``symbol_id`` in the gold table holding the model's feature set, by ts (int64 ns)."""
    names = set(meta.feature_names)
    for spec in TABLES.values():
        if spec.layer == "gold" and "feature_set" in spec.column_names and names <= set(spec.column_names):
            expr = (
                (pc.field("symbol_id") == symbol_id)
                & (pc.field("feature_set") == meta.feature_set)
                & (pc.field("tf") == meta.tf)
            )
            df = lake.read(spec, columns=["ts", "known_at", *meta.feature_names], filter=expr)
            return df.with_columns(pl.col("ts", "known_at").dt.epoch("ns")).sort("ts")
    raise ApiError(404, "no_features", f"no gold table holds feature set {meta.feature_set!r}")


def score_asof(services, onnx_path: str, symbol_id: str, asof: datetime) -> dict:
    """Score ``symbol_id`` as of ``asof`` from gold with the champion's ONNX file."""
    from backtest.reference_scorer import ReferenceScorer
    from feature_store.messages import FeatureUpdate

    if not Path(onnx_path).is_file():
        raise ApiError(404, "model_missing", f"model file {onnx_path} not found")
    shared: ReferenceScorer = services.scorer(onnx_path)
    meta = shared.meta
    ts, known_at, values = _feature_rows(services, meta, symbol_id, asof)
    if len(ts) == 0:
        raise ApiError(404, "no_data", f"no {meta.feature_set} rows for {symbol_id} known at {asof.isoformat()}")
    scorer = ReferenceScorer.__new__(ReferenceScorer)  # share the session, fresh rings per request
    scorer.__dict__.update(shared.__dict__, series={}, rejected=0)
    updates = [
        FeatureUpdate(symbol_id, meta.tf, t, k, meta.feature_set, tuple(v), i)
        for i, (t, k, v) in enumerate(zip(ts.tolist(), known_at.tolist(), values.tolist(), strict=True))
    ]
    for u in updates[:-1]:
        scorer.ingest(u)
    (signal,) = scorer.score(updates[-1:], now_ns=ts_value(asof))
    return signal
