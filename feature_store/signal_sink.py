"""Append published Signals to gold.signals in batches (JetStream durable consumer on the signals stream).

Each message is checked against contracts/signal.schema.json first: one that is not JSON, misses a
field or breaks the schema goes to the dead letters (with its reason) and is acked, so it neither
crashes the sink nor comes back forever. Valid ones are acknowledged only after their batch is
written, and rows whose keys are already in the table are skipped, so a crash between write and
ack (or a Signal the scorer re-sent) replays without duplicating rows.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import polars as pl

from feature_store import schema_check
from feature_store.contract import STREAMING, strict_json
from feature_store.messages import deadletter_subject, ensure_streams
from lakehouse.storage import Lake
from lakehouse.tables import GOLD_SIGNALS

SINK_DURABLE = "signal-sink"


@dataclass
class SinkStats:
    received: int = 0
    written: int = 0
    duplicates: int = 0
    malformed: int = 0  # invalid Signals sent to the dead letters
    batches: int = 0


def check_signal(payload: bytes) -> tuple[dict | None, str | None]:
    """Return (signal, None) for a valid Signal, else (None, why it is refused)."""
    try:
        sig = strict_json(payload, "signal")
    except Exception as exc:  # ContractError or a decoding error: either way not a Signal
        return None, f"malformed_json: {exc}"[:400]
    problems = schema_check.errors(sig, schema_check.load_schema("signal.schema.json"))
    if problems:
        return None, ("invalid_signal: " + "; ".join(problems))[:400]
    return sig, None


def signals_frame(signals: list[dict], payloads: list[str]) -> pl.DataFrame:
    """Rows of gold.signals for published Signal dicts (``payloads``: their JSON as received)."""
    ts_type = pl.Datetime("ns", "UTC")
    frame = pl.DataFrame(
        {
            "ts": [s["ts"] for s in signals],
            "symbol_id": [s["symbol_id"] for s in signals],
            "tf": [s["tf"] for s in signals],
            "model": [s["model"] for s in signals],
            "model_version": [s["model_version"] for s in signals],
            "horizon": [s["horizon"] for s in signals],
            **{
                name: [float(s[name]) for s in signals]
                for name in (
                    "prob_up",
                    "expected_return",
                    "q05",
                    "q50",
                    "q95",
                    "band_lo",
                    "band_hi",
                    "conf",
                    "kelly",
                    "size",
                )
            },
            "guard": [s["guard"] for s in signals],
            "seq": [s["seq"] for s in signals],
            "published_at": [s["published_at"] for s in signals],
            "payload": payloads,
        },
        schema_overrides={
            "ts": pl.Int64,
            "published_at": pl.Int64,
            "horizon": pl.Int64,
            "seq": pl.Int64,
            "guard": pl.String,
        },
    )
    frame = frame.with_columns(pl.col("ts").cast(ts_type), pl.col("published_at").cast(ts_type))
    frame = frame.with_columns(pl.col("ts").dt.strftime("%Y-%m-%d").alias("date"))
    return frame.unique(subset=list(GOLD_SIGNALS.keys), keep="last", maintain_order=True)


def write_signals(lake: Lake, signals: list[dict], payloads: list[str]) -> tuple[int, int]:
    """Append the signals not yet stored; return (written, duplicates)."""
    if not signals:
        return 0, 0
    frame = signals_frame(signals, payloads)
    written, dups = lake.append_new(GOLD_SIGNALS, frame)
    return written, dups + (len(signals) - frame.height)


async def run_sink(
    nats_url: str,
    lake: Lake,
    stop: asyncio.Event,
    *,
    durable: str = SINK_DURABLE,
    batch_size: int = 1000,
    wait_s: float = 0.5,
) -> SinkStats:
    """Consume SIGNALS until ``stop`` is set, writing a batch whenever messages have arrived."""
    import nats

    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    stream = STREAMING.stream_of("signals")
    await ensure_streams(js, [stream, STREAMING.stream_of("deadletter")])
    sub = await js.pull_subscribe(STREAMING.pattern("signals"), durable=durable, stream=stream)
    stats = SinkStats()
    try:
        while not stop.is_set():
            try:
                msgs = await sub.fetch(batch_size, timeout=wait_s)
            except TimeoutError:  # nats' own TimeoutError, or asyncio's when the deadline runs out first
                continue
            signals, payloads = [], []
            for m in msgs:
                sig, reason = check_signal(m.data)
                if sig is None:
                    stats.malformed += 1
                    headers = {"Mps-Reason": reason or "invalid", "Mps-Subject": m.subject}
                    await js.publish(deadletter_subject(m.subject), m.data, headers=headers)
                    continue
                signals.append(sig)
                payloads.append(m.data.decode())
            stats.received += len(msgs)
            # deltalake releases the GIL; keep the event loop responsive while it writes.
            written, dups = await asyncio.to_thread(write_signals, lake, signals, payloads)
            stats.written += written
            stats.duplicates += dups
            stats.batches += 1
            for m in msgs:
                await m.ack()
    finally:
        await nc.flush()  # acks are sent before the connection goes
        await sub.unsubscribe()
        await nc.close()
    return stats
