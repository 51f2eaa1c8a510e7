"""Append published Signals to gold.signals in batches (JetStream durable consumer on the signals stream).

Each message is checked against contracts/signal.schema.json first: one that is not JSON, misses a
field or breaks the schema goes to the dead letters (with its reason) and is acked, so it neither
crashes the sink nor comes back forever. Valid ones are acknowledged only after their batch is
written, and rows whose keys are already in the table are skipped, so a crash between write and
ack (or a Signal the scorer re-sent) replays without duplicating rows.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass

import polars as pl

from feature_store import schema_check
from feature_store.contract import STREAMING, strict_json
from feature_store.messages import deadletter_subject, ensure_streams
from lakehouse.storage import Lake
from lakehouse.tables import GOLD_SIGNALS

SINK_DURABLE = "signal-sink"
log = logging.getLogger(__name__)


@dataclass
class SinkStats:
    received: int = 0
    written: int = 0
    duplicates: int = 0
    malformed: int = 0  # invalid Signals sent to the dead letters
    batches: int = 0
    nats_errors: int = 0


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
    from nats.errors import Error as NatsError

    nc = await nats.connect(nats_url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
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
            except NatsError:  # NATS down or reconnecting: unacked messages come back later
                stats.nats_errors += 1
                if nc.is_closed:
                    raise
                await asyncio.sleep(0.2)
                continue
            signals, payloads, dead = [], [], []
            for m in msgs:
                sig, reason = check_signal(m.data)
                if sig is None:
                    stats.malformed += 1
                    headers = {"Mps-Reason": reason or "invalid", "Mps-Subject": m.subject}
                    dead.append((deadletter_subject(m.subject), m.data, headers))
                    continue
                signals.append(sig)
                payloads.append(m.data.decode())
            stats.received += len(msgs)
            # deltalake releases the GIL; keep the event loop responsive while it writes.
            written, dups = await asyncio.to_thread(write_signals, lake, signals, payloads)
            stats.written += written
            stats.duplicates += dups
            stats.batches += 1
            try:
                for subject, data, headers in dead:
                    await js.publish(subject, data, headers=headers)
                for m in msgs:
                    await m.ack()
            except NatsError as exc:  # not acked: redelivered, and the keyed write skips the rows
                stats.nats_errors += 1
                log.warning("acks lost (%s); the batch will be redelivered", exc)
    finally:
        await nc.flush()  # acks are sent before the connection goes
        await sub.unsubscribe()
        await nc.close()
    return stats


def main(argv: list[str] | None = None) -> None:
    """Run the sink until SIGTERM/SIGINT: ``python -m feature_store.signal_sink --nats URL --lake DIR``."""
    import argparse
    import signal

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--nats", required=True)
    parser.add_argument("--lake", required=True, help="lake root (local path or s3:// URI)")
    parser.add_argument("--durable", default=SINK_DURABLE)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--wait-s", type=float, default=0.5)
    args = parser.parse_args(argv)

    async def serve() -> SinkStats:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        print("ready", flush=True)
        return await run_sink(
            args.nats, Lake(args.lake), stop, durable=args.durable, batch_size=args.batch_size, wait_s=args.wait_s
        )

    stats = asyncio.run(serve())
    print(json.dumps(stats.__dict__), flush=True)


if __name__ == "__main__":
    main()
