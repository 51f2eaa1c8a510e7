"""Append published Signals to gold.signals in batches (JetStream durable consumer on the signals stream).

Each message is checked against contracts/signal.schema.json first: one that is not JSON, misses a
field or breaks the schema goes to the dead letters (with its reason) and is acked, so it neither
crashes the sink nor comes back forever. Valid ones are acknowledged only after their batch is
written, and rows whose keys are already in the table are skipped, so a crash between write and
ack (or a Signal the scorer re-sent) replays without duplicating rows.

A commit has a fixed cost (the key check reads the log and the stored keys it may overlap, the
write adds a file and a log entry): ~70 ms here into a 3.6M-row table, whether it holds 1 or 200
signals (1,000: 81 ms), and more on a loaded machine. JetStream hands a fetch whatever is pending,
so a sink that committed each fetch would settle into small batches committed as fast as it can
commit them, spending a whole core on fixed costs. After a fetch returns less than a full batch the
sink therefore lingers (``linger_s``, default 0.5 s) and fetches again until the batch is full or
the linger is over: batches grow with the load (a replica that keeps up commits about twice a
second), and a backlog is drained in full batches.

Every commit and key check also costs time in proportion to the table's file count, so a sink
that only appended would slow down hour by hour (at 2,000 signals a second, a commit took ~1 s
after 30 minutes). Every ``compact_every`` of its commits it compacts the date partitions it wrote
meanwhile (``lakehouse.maintain.compact_partitions``). Replicas take turns through the table's
compaction lease; their appends are unaffected by a compaction. ``mps maintain`` still vacuums the
rewritten files.

Once a second after acking, the sink purges SIGNALS below what every durable on it has acked
(``feature_store.retention``): a stream that grows forever makes a NATS restart after ``kill -9``
slower and slower.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson
import polars as pl

from feature_store import schema_check
from feature_store.contract import STREAMING, strict_json
from feature_store.messages import deadletter_subject, ensure_streams
from feature_store.retention import trim_consumed
from lakehouse.maintain import compact_partitions
from lakehouse.storage import Lake
from lakehouse.tables import GOLD_SIGNALS

SINK_DURABLE = "signal-sink"
COMPACT_EVERY = 32  # commits between compactions of the partitions written meanwhile
COMPACT_TARGET_BYTES = 16 * 1024 * 1024  # small enough that a compaction never rewrites much
TRIM_EVERY_S = 1.0  # seconds between purges of the signals the sink has acked
LINGER_S = 0.5  # seconds a partial batch waits for more signals before it is written
log = logging.getLogger(__name__)


@dataclass
class SinkStats:
    received: int = 0
    written: int = 0
    duplicates: int = 0
    malformed: int = 0  # invalid Signals sent to the dead letters
    batches: int = 0
    nats_errors: int = 0
    write_errors: int = 0
    compactions: int = 0
    compactions_skipped: int = 0  # another replica (or ``mps maintain``) held the table's compaction lease
    compacted_files: int = 0  # small files rewritten into larger ones


def check_signal(payload: bytes) -> tuple[dict | None, str | None]:
    """Return (signal, None) for a valid Signal, else (None, why it is refused).

    The sink's hot path: orjson and the compiled schema accept a valid Signal in ~1/6 of the time
    ``strict_json`` and ``schema_check.errors`` take; those two still word every refusal.
    """
    try:
        sig = orjson.loads(payload)  # strict JSON: NaN/Infinity tokens are refused, as by strict_json
    except orjson.JSONDecodeError:
        try:
            sig = strict_json(payload, "signal")
        except Exception as exc:  # ContractError or a decoding error: either way not a Signal
            return None, f"malformed_json: {exc}"[:400]
    if schema_check.compiled("signal.schema.json")(sig):
        return sig, None
    problems = schema_check.errors(sig, schema_check.load_schema("signal.schema.json"))
    return None, ("invalid_signal: " + "; ".join(problems or ["refused"]))[:400]


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


async def _connect(nats_url: str, stop: asyncio.Event):
    """Connect to NATS, retrying while it is down: a sink started during an outage waits for it."""
    import nats

    async def quiet(exc: Exception) -> None:  # one line per error instead of nats-py's tracebacks
        log.warning("nats: %s", exc or type(exc).__name__)

    delay = 0.05
    while not stop.is_set():
        try:
            return await nats.connect(
                nats_url,
                max_reconnect_attempts=-1,
                reconnect_time_wait=0.1,
                connect_timeout=1,
                error_cb=quiet,
            )
        except Exception as exc:  # refused, reset, no servers: NATS is not up yet
            log.warning("NATS not reachable at %s (%s); retrying", nats_url, exc or type(exc).__name__)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)
    return None


async def _subscribe(js, durable: str, stop: asyncio.Event):
    """The durable pull subscription on SIGNALS, retried while JetStream is (re)starting."""
    from nats.js.api import ConsumerConfig

    stream = STREAMING.stream_of("signals")
    # A killed sink's unacked batch comes back after ack_wait; max_ack_pending well above one
    # batch so that batch never blocks its successor from fetching new signals meanwhile.
    while not stop.is_set():
        try:
            await ensure_streams(js, [stream, STREAMING.stream_of("deadletter")])
            config = ConsumerConfig(ack_wait=30, max_ack_pending=20_000)  # pull_subscribe fills in its names
            return await js.pull_subscribe(STREAMING.pattern("signals"), durable=durable, stream=stream, config=config)
        except Exception as exc:  # NATS down or JetStream not ready after a restart
            log.warning("subscribing to %s failed (%s); retrying", stream, exc or type(exc).__name__)
            await asyncio.sleep(0.2)
    return None


async def run_sink(
    nats_url: str,
    lake: Lake,
    stop: asyncio.Event,
    *,
    durable: str = SINK_DURABLE,
    batch_size: int = 1000,
    wait_s: float = 0.5,
    on_ready: Callable[[], None] | None = None,
    compact_every: int = COMPACT_EVERY,
    compact_target_bytes: int = COMPACT_TARGET_BYTES,
    trim_every_s: float = TRIM_EVERY_S,
    linger_s: float = LINGER_S,
) -> SinkStats:
    """Consume SIGNALS until ``stop`` is set, writing a batch whenever messages have arrived.

    NATS being down at start, a NATS restart, or a failed write never ends the loop: it waits
    and retries, and messages not yet acked come back (the keyed write skips what is stored).
    ``on_ready`` is called once the subscription is live. Every ``compact_every`` commits (0: never)
    the partitions written since the last compaction are compacted to ``compact_target_bytes`` files.
    At most every ``trim_every_s`` (0: never) after an ack, SIGNALS is purged below what the sink
    has acked (``retention.trim_consumed``), so the stream holds only what is not yet stored.
    A fetch that returns less than ``batch_size`` is topped up for up to ``linger_s`` (0: never)
    before the batch is written.
    """
    stats = SinkStats()
    written_dates: set[str] = set()
    commits_at_compaction = 0
    stream, untrimmed, trimmed_at = STREAMING.stream_of("signals"), False, -math.inf
    nc = await _connect(nats_url, stop)
    if nc is None:
        return stats
    js = nc.jetstream()
    sub = await _subscribe(js, durable, stop)
    try:
        if sub is not None and on_ready is not None:
            on_ready()
        while sub is not None and not stop.is_set():
            try:
                msgs = await sub.fetch(batch_size, timeout=wait_s)
            except TimeoutError:  # nats' own TimeoutError, or asyncio's when the deadline runs out first
                msgs = []
            except Exception as exc:  # NATS down or reconnecting: unacked messages come back later
                stats.nats_errors += 1
                if nc.is_closed:
                    raise
                log.debug("fetch failed: %s", exc)
                await asyncio.sleep(0.1)
                continue
            if msgs and len(msgs) < batch_size and linger_s > 0:
                msgs += await _top_up(sub, batch_size - len(msgs), linger_s, stop, stats)
            if msgs:
                written_dates |= await _handle(js, lake, msgs, stats)
                untrimmed = True
                if compact_every and written_dates and stats.batches - commits_at_compaction >= compact_every:
                    commits_at_compaction = stats.batches
                    if await _compact(lake, sorted(written_dates), compact_target_bytes, stats):
                        written_dates.clear()
            if untrimmed and trim_every_s and time.monotonic() - trimmed_at >= trim_every_s:
                trimmed_at = time.monotonic()
                # the server applies acks asynchronously: trim again until a trim finds nothing left
                untrimmed = await trim_consumed(js, stream) > 0 or bool(msgs)
    finally:
        try:
            await asyncio.wait_for(nc.flush(), 2)  # acks are sent before the connection goes
        except Exception:  # NATS is down: the unacked messages are redelivered to the next sink
            pass
        await nc.close()
    return stats


async def _top_up(sub, wanted: int, linger_s: float, stop: asyncio.Event, stats: SinkStats) -> list:
    """Up to ``wanted`` more messages, gathered for at most ``linger_s``; what came when NATS fails.

    It polls a few times over the linger rather than once per message: each fetch returns what is
    pending at once, and a fetch per message would cost more than the commit it saves.
    """
    more: list = []
    deadline = time.monotonic() + linger_s
    step = linger_s / 4
    while len(more) < wanted and not stop.is_set():
        left = deadline - time.monotonic()
        if left <= 0.01:
            break
        await asyncio.sleep(min(step, left))
        try:
            more += await sub.fetch(wanted - len(more), timeout=max(deadline - time.monotonic(), 0.01))
        except TimeoutError:  # nothing more arrived before the deadline: write what there is
            break
        except Exception as exc:  # NATS down: write what was fetched; the rest is redelivered later
            stats.nats_errors += 1
            log.debug("fetch failed while lingering: %s", exc)
            break
    return more


async def _compact(lake: Lake, dates: list[str], target_bytes: int, stats: SinkStats) -> bool:
    """Compact the given date partitions of gold.signals; whether it was done this turn.

    A failure is logged and never stops the sink; while another replica holds the compaction lease
    the turn is skipped, and the dates wait for the next one.
    """
    parts = [{"date": d} for d in dates]
    try:
        rewritten = await asyncio.to_thread(compact_partitions, lake, GOLD_SIGNALS, parts, target_bytes)
    except Exception as exc:  # the lake is unavailable: the next compaction tries again
        log.warning("compacting gold.signals %s failed: %s", dates, exc)
        return False
    if rewritten is None:
        stats.compactions_skipped += 1
        return False
    stats.compactions += 1
    stats.compacted_files += rewritten
    return True


def _utc_date(ts_ns: int) -> str:
    return datetime.fromtimestamp(ts_ns // 1_000_000_000, UTC).strftime("%Y-%m-%d")


async def _handle(js, lake: Lake, msgs: list, stats: SinkStats) -> set[str]:
    """Check, write and ack one fetched batch (refused messages to the dead letters, then acked).

    Returns the date partitions a write went to (empty when nothing was written).
    """
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
    try:
        # deltalake releases the GIL; keep the event loop responsive while it writes.
        written, dups = await asyncio.to_thread(write_signals, lake, signals, payloads)
    except Exception as exc:  # lake unavailable, lost commit races: not acked, so redelivered
        stats.write_errors += 1
        log.error("writing %d signals failed (%s); they will be redelivered", len(signals), exc)
        for m in msgs:
            with contextlib.suppress(Exception):
                await m.nak(delay=1.0)
        return set()
    stats.written += written
    stats.duplicates += dups
    stats.batches += 1
    try:
        for subject, data, headers in dead:
            await js.publish(subject, data, headers=headers)
        for m in msgs:
            await m.ack()
    except Exception as exc:  # not acked: redelivered, and the keyed write skips the rows
        stats.nats_errors += 1
        log.warning("acks lost (%s); the batch will be redelivered", exc)
    return {_utc_date(s["ts"]) for s in signals} if written else set()


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
    parser.add_argument(
        "--linger", type=float, default=LINGER_S, help="seconds a partial batch waits for more signals (0: never)"
    )
    parser.add_argument(
        "--compact-every", type=int, default=COMPACT_EVERY, help="commits between compactions (0: never)"
    )
    parser.add_argument(
        "--trim-every", type=float, default=TRIM_EVERY_S, help="seconds between purges of acked signals (0: never)"
    )
    args = parser.parse_args(argv)

    async def serve() -> SinkStats:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        return await run_sink(
            args.nats,
            Lake(args.lake),
            stop,
            durable=args.durable,
            batch_size=args.batch_size,
            wait_s=args.wait_s,
            compact_every=args.compact_every,
            trim_every_s=args.trim_every,
            linger_s=args.linger,
            on_ready=lambda: print("ready", flush=True),
        )

    stats = asyncio.run(serve())
    print(json.dumps(stats.__dict__), flush=True)


if __name__ == "__main__":
    main()
