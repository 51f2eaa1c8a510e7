"""The streaming featurizer over NATS: MARKET_DATA in, FeatureUpdates on ``features.v1.<tf>.<symbol>`` out.

Recovery is a checkpoint plus a short replay. Every ``checkpoint_every_s`` (and at a stop or an
idle exit), once every row it has closed is published, the featurizer stores its state in the
``featurizer_state`` object store with the MARKET_DATA sequence the state includes (header
``Mps-Md-Seq``), then trims MARKET_DATA below what every reader still needs (``retention``). At
start it restores that state and reads MARKET_DATA from the next sequence. Without a checkpoint
(the first run, or one of another feature set version) it falls back to FEATURES: it reads the last
update per symbol subject, replays MARKET_DATA from the open of the session that update belongs to
(the state is rebuilt from the session's own ticks) and publishes only seconds after each symbol's
last stored one. Every update also carries a ``Nats-Msg-Id`` (feature set, symbol, second), so a row
published after the last checkpoint and sent again after a crash is dropped by JetStream's
duplicate window. A crash therefore loses nothing and duplicates nothing in FEATURES.

Seconds close on event time (see ``state``): a second is published when any later tick arrives,
and ``run(idle_exit_s=...)`` closes the last one when the input has been idle that long (replays).
Live, a heartbeat closes them on the clock too (``FeaturizerConfig.heartbeat_lateness_s`` and a
``clock``): every poll, seconds that ended more than the lateness ago are published for every active
symbol, so a quiet symbol's update does not wait for the next tick anywhere.
Each update's ``seq`` is its ``ts`` in whole seconds: strictly increasing per symbol, and the same
number when a restart recomputes a row.

A NATS restart (``kill -9`` of the server) costs neither: the ordered consumer asks for idle
heartbeats every ``idle_heartbeat_s`` (0.25 s), and two missed ones make the client recreate it from the
stream sequence after the last message it received (the in-memory state is intact, so nothing is
replayed). With ``publish_jetstream`` the updates are pipelined across symbols with their acks
collected (``Outbox``): a symbol's next row goes out only once its last one is stored, and a publish
that fails is sent again with the same ``Nats-Msg-Id``, so FEATURES holds each row once and in order. Core publishing (the default) is
faster but loses whatever was in flight when the server died.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson

from core.clock import Clock
from core.errors import ConfigError, ContractError
from core.timetypes import NS_PER_S
from feature_store.contract import STREAMING
from feature_store.messages import FeatureUpdate, decode, features_subject
from feature_store.registry import FeatureSet, get
from feature_store.retention import checkpoint_floors, trim_consumed
from feature_store.streaming import checkpoint as checkpoints
from feature_store.streaming import market_data as md
from feature_store.streaming.state import TickFeaturizer

log = logging.getLogger(__name__)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
FIRST_MESSAGE_WAIT_S = 10.0  # an idle exit waits at least this long for the first message (a replay starting up)


@dataclass(frozen=True)
class FeaturizerConfig:
    """How the service reads MARKET_DATA and publishes FEATURES."""

    feature_set: str = "tick_v2"
    poll_s: float = 0.05  # how often run() checks its stop event and the idle timer
    consume: str = "jetstream"  # "jetstream": replayable MARKET_DATA; "core": live subjects only, no recovery
    publish_jetstream: bool = False  # True: wait for FEATURES' ack of every update (slower, stored on return)
    heartbeat_lateness_s: float | None = None  # live: close seconds this long after they end on the clock
    idle_heartbeat_s: float = 0.25  # MARKET_DATA consumer heartbeat: two missed recreate it (NATS restarts)
    max_in_flight: int = 2000  # publish_jetstream: unacked updates before the featurizer waits for acks
    checkpoint_every_s: float = 2.0  # jetstream: seconds between restart checkpoints (0: none, recover from FEATURES)


async def connect(url: str):
    """A NATS connection that reconnects forever, 0.1 s apart (nats-py's default waits 2 s, 60 times)."""
    import nats

    async def one_line(exc: Exception) -> None:  # instead of nats-py's traceback per failed reconnect
        log.warning("nats: %s", exc or type(exc).__name__)

    return await nats.connect(
        url, max_reconnect_attempts=-1, reconnect_time_wait=0.1, connect_timeout=1, error_cb=one_line
    )


async def ensure_stream(js, name: str) -> None:
    """Create a contract stream if it does not exist (idempotent)."""
    from nats.js.errors import NotFoundError

    try:
        await js.stream_info(name)
    except NotFoundError:
        await js.add_stream(name=name, subjects=STREAMING.stream_subjects(name))


async def last_published(js, tf: str) -> dict[str, FeatureUpdate]:
    """The last FeatureUpdate stored per symbol for timeframe ``tf`` (the restart checkpoint)."""
    pattern = features_subject(tf, "*").rsplit(".", 1)[0] + ".>"
    info = await js.stream_info(md.FEATURES_STREAM, subjects_filter=pattern)
    out: dict[str, FeatureUpdate] = {}
    for subject in (info.state.subjects or {}).keys():
        msg = await js.get_last_msg(md.FEATURES_STREAM, subject)
        update = decode(msg.data)
        out[update.symbol_id] = update
    return out


def fast_encode(update: FeatureUpdate) -> bytes:
    """``messages.encode`` with orjson: the same checked fields, the same numbers, about 10x faster."""
    update.check()
    return orjson.dumps(
        {
            "symbol_id": update.symbol_id,
            "tf": update.tf,
            "ts": update.ts,
            "known_at": update.known_at,
            "feature_set": update.feature_set,
            "values": list(update.values),
            "seq": update.seq,
        }
    )


class Outbox:
    """JetStream publishes with their acks collected, pipelined across subjects, one in flight per subject.

    A row is sent only once the previous row of its subject is acked (stored), so no row can land
    before an earlier one of its symbol whatever the connection does: a publish lost with a dying
    server while later ones are flushed from nats-py's reconnect buffer once it is back (a re-send
    of the whole tail in order is not enough: the soak then stored 656 rows behind later ones, and
    the scorer refused them as late). A failed publish is sent again with the same ``Nats-Msg-Id``
    until acked; a try that was stored before its ack was lost is dropped as a duplicate.
    """

    RETRY_PAUSE_S = 0.05

    def __init__(self, js, timeout_s: float = 1.0) -> None:
        self.js, self.timeout_s = js, timeout_s
        self.queues: dict[str, deque[tuple[str, bytes, dict]]] = {}  # per subject: the head is in flight
        self.outstanding = 0
        self.acked = 0  # since the last settle
        self.retries = 0
        self._changed = asyncio.Event()

    def __len__(self) -> int:
        return self.outstanding

    def send(self, subject: str, payload: bytes, headers: dict) -> None:
        """Queue one publish behind its subject's unacked ones (sent at once if there are none)."""
        queue = self.queues.setdefault(subject, deque())
        queue.append((subject, payload, headers))
        self.outstanding += 1
        if len(queue) == 1:
            self._start(queue[0])

    def _start(self, item: tuple[str, bytes, dict]) -> None:
        subject, payload, headers = item
        future = asyncio.ensure_future(self.js.publish(subject, payload, timeout=self.timeout_s, headers=headers))
        future.add_done_callback(lambda f: self._done(item, f))

    def _done(self, item: tuple[str, bytes, dict], future: asyncio.Future) -> None:
        if future.cancelled() or future.exception() is not None:  # NATS down or JetStream not ready: again
            self.retries += 1
            asyncio.get_running_loop().call_later(self.RETRY_PAUSE_S, self._start, item)
            return
        queue = self.queues[item[0]]
        queue.popleft()
        self.outstanding -= 1
        self.acked += 1
        if queue:
            self._start(queue[0])
        else:
            del self.queues[item[0]]
        self._changed.set()

    async def settle(self, keep: int = 0) -> int:
        """Wait until at most ``keep`` publishes are unacked; return how many were acked since the last call."""
        while self.outstanding > keep:
            self._changed.clear()
            await self._changed.wait()
        acked, self.acked = self.acked, 0
        return acked


class StreamingFeaturizer:
    """Run a ``TickFeaturizer`` against NATS; ``counts`` and ``latencies_ns`` say what it did."""

    def __init__(
        self,
        nc,
        config: FeaturizerConfig = FeaturizerConfig(),
        featurizer: TickFeaturizer | None = None,
        clock: Clock | None = None,
    ):
        if config.heartbeat_lateness_s is not None and (clock is None or not 0 <= config.heartbeat_lateness_s < 3600):
            raise ConfigError("featurizer heartbeat needs a clock and a lateness in [0, 3600) s")
        self.nc, self.config, self.clock = nc, config, clock
        self.feature_set: FeatureSet = get(config.feature_set)
        self.featurizer = featurizer or TickFeaturizer(self.feature_set)
        self.resume: dict[str, int] = {}  # per symbol: the last second published (later ones only go out)
        self.counts = {"events": 0, "published": 0, "suppressed": 0, "bad": 0, "checkpoints": 0}
        self.resumed_at: int | None = None  # the MARKET_DATA sequence of the checkpoint this run started from
        self._busy = asyncio.Lock()  # held while a message is applied and its rows published
        self._last_msg = None  # the last MARKET_DATA message applied (its metadata holds the position)
        self._checkpointed: tuple | None = None  # what the last stored checkpoint held
        self.latencies_ns: list[int] | None = None
        self.cpu_ns: list[int] | None = None
        self.on_update: Callable[[FeatureUpdate], None] | None = None

    def record_latencies(self) -> None:
        """Keep every event's processing time (decode, update, publish of the rows it closed), wall and CPU."""
        self.latencies_ns, self.cpu_ns = [], []

    async def _start(self, on_msg):
        """Ensure the streams, read the checkpoint, subscribe (ordered push consumer) from the replay start."""
        from nats.js.api import ConsumerConfig, DeliverPolicy

        if self.config.consume not in ("jetstream", "core"):
            raise ConfigError(f"featurizer consume must be 'jetstream' or 'core', not {self.config.consume!r}")
        js, fs = self.nc.jetstream(), self.feature_set
        for name in (md.MD_STREAM, md.FEATURES_STREAM):
            await ensure_stream(js, name)
        cfg = ConsumerConfig(filter_subjects=md.md_patterns())
        policy = DeliverPolicy.ALL
        if self.config.consume == "jetstream" and self.config.checkpoint_every_s:
            self.resumed_at = await self._restore(js)
        if self.resumed_at is not None:
            policy, cfg.opt_start_seq = DeliverPolicy.BY_START_SEQUENCE, self.resumed_at + 1
            log.info("featurizer %s: resuming from its checkpoint at MARKET_DATA %d", fs.name, self.resumed_at + 1)
        else:
            last = await last_published(js, fs.tf)
            self.resume = {s: u.ts for s, u in last.items()}
            if self.config.consume == "core":
                sub = await self.nc.subscribe(md.md_wildcard(), cb=on_msg, pending_msgs_limit=1_000_000)
                return js, sub
            start = self._replay_start(last)
            if start is not None:
                policy, cfg.opt_start_time = DeliverPolicy.BY_START_TIME, start.isoformat().replace("+00:00", "Z")
            log.info("featurizer %s: no checkpoint; replaying MARKET_DATA from %s", fs.name, start or "its start")
        sub = await js.subscribe(
            "", stream=md.MD_STREAM, ordered_consumer=True, deliver_policy=policy, config=cfg, cb=on_msg,
            pending_msgs_limit=1_000_000, pending_bytes_limit=1 << 30, idle_heartbeat=self.config.idle_heartbeat_s,
        )  # fmt: skip
        return js, sub

    def _replay_start(self, last: dict[str, FeatureUpdate]) -> datetime | None:
        """Where the replay starts: the earliest session open among the symbols' last stored rows."""
        opens = []
        for symbol, update in last.items():
            session = self.featurizer.sessions.find(self.featurizer._calendar(symbol), update.ts)
            if session is not None:
                opens.append(session[0])
        return datetime.fromtimestamp(min(opens) // 1000 / 1e6, UTC) if opens else None

    async def _restore(self, js) -> int | None:
        """Continue from this featurizer's checkpoint: the MARKET_DATA sequence it includes, or None (no checkpoint).

        A checkpoint beyond MARKET_DATA's last message (the stream was deleted and created again)
        is not used either: the run rebuilds its state from FEATURES instead.
        """
        saved = await checkpoints.load(js, self.feature_set)
        if saved is None:
            return None
        last_seq = (await js.stream_info(md.MD_STREAM)).state.last_seq
        if saved["md_seq"] > last_seq:
            log.warning(
                "featurizer checkpoint at MARKET_DATA %d is past its end (%d); not used", saved["md_seq"], last_seq
            )
            return None
        self.featurizer.restore(saved["state"])
        self.resume = dict(saved["resume"])
        self._checkpointed = self._mark(saved["md_seq"])  # stored already
        return saved["md_seq"]

    def _mark(self, seq: int | None) -> tuple:
        """A checkpoint at ``seq`` in short: a new one is stored only when this changed."""
        f = self.featurizer
        return seq, f.counts["rows"], f.watermark, f.target

    async def _checkpoint(self, js) -> None:
        """Store the state and its MARKET_DATA position, then trim MARKET_DATA below what is still needed.

        The state is taken between messages, once every row it has closed is acked by FEATURES
        (``publish_jetstream``) or written to the connection ahead of the checkpoint itself (core).
        A failure (NATS down) is logged; the next checkpoint tries again.
        """
        async with self._busy:
            await self._collect_acks(0)
            seq = self.resumed_at if self._last_msg is None else self._last_msg.metadata.sequence.stream
            mark = self._mark(seq)
            if seq is None or mark == self._checkpointed:
                return  # nothing consumed yet, or nothing changed since the last checkpoint
            body = checkpoints.dumps(self.feature_set, seq, self.resume, self.featurizer.state())
        try:
            await checkpoints.store(js, self.feature_set, seq, body)
        except Exception as exc:
            log.warning("featurizer checkpoint not stored (%s); trying again later", exc)
            return
        self._checkpointed = mark
        self.counts["checkpoints"] += 1
        floors = await checkpoint_floors(js)
        if floors is not None:
            await trim_consumed(js, md.MD_STREAM, extra_floors=floors)

    async def run(
        self, stop: asyncio.Event | None = None, idle_exit_s: float | None = None, until_events: int | None = None
    ) -> dict:
        """Consume until ``stop`` is set, the input is idle for ``idle_exit_s``, or ``until_events`` were read.

        An idle exit or ``until_events`` (the input is over) closes the watermark's second; a stop
        leaves it open for the next run, as a crash would. Both end with a checkpoint (a crash
        resumes from the last periodic one).
        """
        f, clock, cpu = self.featurizer, time.perf_counter_ns, time.thread_time_ns
        last_seen = [time.monotonic()]

        async def on_msg(msg) -> None:
            async with self._busy:
                t0, c0 = clock(), cpu()
                self._apply(msg.subject, msg.data)
                self._last_msg = msg
                if f.out:
                    await self._publish()
                if self.latencies_ns is not None and self.cpu_ns is not None:
                    self.latencies_ns.append(clock() - t0)
                    self.cpu_ns.append(cpu() - c0)
                last_seen[0] = time.monotonic()

        js, sub = await self._start(on_msg)
        self._outbox = Outbox(js) if self.config.publish_jetstream else None
        checkpoint_every = self.config.checkpoint_every_s if self.config.consume == "jetstream" else 0.0
        checkpointed_at = time.monotonic()
        stop = stop or asyncio.Event()
        drained = False
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=self.config.poll_s)
            except TimeoutError:
                pass
            if self.clock is not None and self.config.heartbeat_lateness_s is not None:
                lateness_ns = int(self.config.heartbeat_lateness_s * NS_PER_S)
                now_ns = (self.clock() - EPOCH) // timedelta(microseconds=1) * 1000
                f.advance(now_ns - lateness_ns)  # close quiet symbols' seconds on the clock
                if f.out:
                    await self._publish()
            if f.due and time.monotonic() - last_seen[0] >= self.config.poll_s:
                f.drain()  # the input paused: publish every due second now rather than at the next tick
                await self._publish()
            if until_events is not None and self.counts["events"] >= until_events:
                drained = True
                break
            if idle_exit_s is None:
                patience = math.inf
            else:
                patience = idle_exit_s if self.counts["events"] else max(idle_exit_s, FIRST_MESSAGE_WAIT_S)
            idle = time.monotonic() - last_seen[0] >= patience
            if idle and not sub.pending_msgs:  # nothing arrived lately and nothing waits in the client's queue
                drained = True
                break
            await self._collect_acks(self.config.max_in_flight)  # count what was acked (waits only when over)
            if checkpoint_every and time.monotonic() - checkpointed_at >= checkpoint_every:
                await self._checkpoint(js)
                checkpointed_at = time.monotonic()
        async with self._busy:  # no message is left half-applied
            await sub.unsubscribe()
        if drained:  # the input is over: its last second is complete (a stop leaves it open, as a crash does)
            f.flush()
            await self._publish()
        await self._collect_acks(0)
        await self.nc.flush()
        if checkpoint_every:
            await self._checkpoint(js)
        return {**self.counts, **self.featurizer.counts}

    async def _collect_acks(self, keep: int) -> None:
        if self._outbox is not None:
            acked = await self._outbox.settle(keep)  # (not `+= await`: the other caller's count would be lost)
            self.counts["published"] += acked
            self.counts["publish_retries"] = self._outbox.retries

    def _apply(self, subject: str, data: bytes) -> None:
        self.counts["events"] += 1
        try:
            kind = md.kind_of(subject)
            m = md.decode(data, kind)
            if kind == md.TRADE:
                self.featurizer.on_trade(m["symbol_id"], m["ts"], float(m["price"]), float(m["size"]))
            else:
                self.featurizer.on_quote(
                    m["symbol_id"], m["ts"], m.get("bid"), m.get("bid_size"), m.get("ask"), m.get("ask_size")
                )
        except (ContractError, KeyError, TypeError, ValueError):
            self.counts["bad"] += 1

    async def _publish(self) -> None:
        """Publish the featurizer's finished rows (rows a restart already stored are skipped)."""
        rows, self.featurizer.out = self.featurizer.out, []
        fs = self.feature_set
        for symbol, ts, values in rows:
            if ts <= self.resume.get(symbol, -1):
                self.counts["suppressed"] += 1
                continue
            update = FeatureUpdate(symbol, fs.tf, ts, ts, fs.name, tuple(values), ts // NS_PER_S)
            payload = fast_encode(update)
            msg_id = {"Nats-Msg-Id": f"{fs.name}.{symbol}.{update.seq}"}  # JetStream drops a re-sent row
            if self._outbox is not None:
                self._outbox.send(update.subject, payload, msg_id)  # counted when acked
            else:
                await self.nc.publish(update.subject, payload, headers=msg_id)
                self.counts["published"] += 1
            self.resume[symbol] = ts
            if self.on_update is not None:
                self.on_update(update)
        if self._outbox is not None and len(self._outbox) >= self.config.max_in_flight:
            await self._collect_acks(self.config.max_in_flight // 2)
