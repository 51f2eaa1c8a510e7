"""NATS -> [featurizer ->] Rust scorer -> signal sink as killable child processes, with a supervisor and a clean close.

The fault tests and the soak (benchmarks/faults.py) drive the streaming path through this one
class, so the soak restarts processes exactly as the tests do. Kills and restarts happen under one
lock and a killed component is marked down until its restart, so the supervisor (which restarts a
process that exited on its own, as systemd or ``mps up`` would) never races a deliberate restart
into two scorers or two sinks on one durable. Every process ever started is remembered, and
``close`` SIGKILLs whatever is still alive after the graceful stops, whatever else failed.

With ``featurizer`` (a command line; ``{nats}`` is replaced by the server's URL) the streaming
featurizer runs in the loop too, as the "featurizer" victim: market data on MARKET_DATA in,
FeatureUpdates on FEATURES out. Any featurizer that takes its NATS URL on the command line fits
(``mps featurizer`` today, a Rust one later).
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

from streaming_harness import MODEL_V1, Child, Sink, kill_nats, kill_scorer, scorer

from feature_store.messages import FeatureUpdate, encode
from mps.nats_server import NatsServer
from mps.scorer_process import ScorerProcess


async def publish_acked(js, update: FeatureUpdate, timeout: float = 0.5) -> int:
    """Publish ``update`` until JetStream acks it; return the attempts it took.

    Each try carries ``Nats-Msg-Id`` (symbol, tf, seq), so a try whose ack was lost but which the
    stream stored is not stored twice when the next try lands (JetStream's duplicate window).
    """
    payload = encode(update)
    headers = {"Nats-Msg-Id": f"{update.symbol_id}:{update.tf}:{update.seq}"}
    attempts = 0
    while True:
        attempts += 1
        try:
            await js.publish(update.subject, payload, timeout=timeout, headers=headers)
            return attempts
        except Exception:  # NATS down, reconnecting, or JetStream not ready yet: the same update again
            await asyncio.sleep(0.05)


# `mps featurizer` picks its engine: the Rust mps-featurizer when its release binary is built (make test
# builds it), the Python TickFeaturizer service otherwise
MPS_FEATURIZER = (
    str(Path(sys.executable).parent / "mps"), "featurizer", "--nats-url", "{nats}", "--publish-jetstream",
)  # fmt: skip


class Featurizer(Child):
    """A streaming featurizer command as a child process (``{nats}`` in its arguments is the server URL)."""

    stop_signal = signal.SIGINT  # mps featurizer stops on ^C, leaving its open second to replay

    def __init__(self, command: tuple[str, ...], url: str, log: Path) -> None:
        super().__init__([a.replace("{nats}", url) for a in command], log)


class Pipeline:
    """NATS (JetStream), the scorer and the sink under ``work``; ``kill``/``restart`` any of them.

    ``sinks`` > 1 runs sink replicas on the one durable consumer ("sink", "sink1", ...): their
    writes are atomic and keyed, so replicas never double a row, and when one dies the others
    keep storing while it restarts (a Python sink's cold start is seconds of imports).
    """

    def __init__(
        self,
        work: Path,
        *,
        model: Path = MODEL_V1,
        sink_args: tuple[str, ...] = (),
        sinks: int = 1,
        scorer_kw: dict | None = None,
        featurizer: tuple[str, ...] | None = None,
    ) -> None:
        self.work = work
        self.lake_root = work / "lake"
        self.nats = NatsServer(store_dir=work / "nats")
        self.model = model
        self.scorer_kw = scorer_kw or {}
        self.sink_args = sink_args
        self.featurizer_cmd = featurizer
        self.scorer: ScorerProcess | None = None
        self.featurizer: Featurizer | None = None
        self.sinks: list[Sink | None] = [None] * sinks
        self.sink_names = ("sink", *(f"sink{i}" for i in range(1, sinks)))
        self.victims = ("nats", "scorer", *self.sink_names, *(("featurizer",) if featurizer else ()))
        self.crashes: Counter = Counter()  # exited on their own, restarted by the supervisor
        self.restart_errors: Counter = Counter()
        self._lock = threading.RLock()
        self._down: set[str] = set()
        self._spawned: list[subprocess.Popen] = []
        self._stop = threading.Event()
        self._supervisor: threading.Thread | None = None

    @property
    def url(self) -> str:
        return self.nats.url

    # ---- processes ---------------------------------------------------------------------------
    def _start(self, victim: str) -> None:
        if victim == "nats":
            # After kill -9 nats-server rebuilds every stream from its blocks before it listens (its
            # index.db is stale whenever anything was written since its last 2-minute snapshot), so
            # a big store takes many seconds; a shorter timeout would kill it mid-rebuild, over and over.
            self.nats.start(timeout=180)
            assert self.nats._proc is not None
            self._spawned.append(self.nats._proc)
        elif victim == "scorer":
            proc = scorer(self.nats.url, self.work, model=self.model, **self.scorer_kw)
            self.scorer = proc
            proc.start(timeout=30)  # a failed start stops its own process
            assert proc.proc is not None
            self._spawned.append(proc.proc)
        elif victim == "featurizer":
            assert self.featurizer_cmd is not None
            self.featurizer = Featurizer(self.featurizer_cmd, self.nats.url, self.work / "featurizer.log").start()
            assert self.featurizer.proc is not None
            self._spawned.append(self.featurizer.proc)
        else:
            i = int(victim[4:] or 0)
            sink = Sink(self.nats.url, self.lake_root, self.work / f"{victim}.log")
            sink.args += list(self.sink_args)
            self.sinks[i] = sink.start()
            assert sink.proc is not None
            self._spawned.append(sink.proc)

    @property
    def sink(self) -> Sink | None:
        """The first sink replica (the one ``kill("sink")`` hits)."""
        return self.sinks[0]

    def _proc(self, victim: str) -> subprocess.Popen | None:
        if victim == "nats":
            return self.nats._proc
        if victim == "featurizer":
            return self.featurizer.proc if self.featurizer is not None else None
        holder = self.scorer if victim == "scorer" else self.sinks[int(victim[4:] or 0)]
        return holder.proc if holder is not None else None

    def start(self, supervise: bool = True) -> Pipeline:
        """Start NATS, the scorer and the sink (and the supervisor thread)."""
        with self._lock:
            for victim in self.victims:
                self._start(victim)
        if supervise:
            self._supervisor = threading.Thread(target=self._supervise, name="supervisor", daemon=True)
            self._supervisor.start()
        return self

    def wait_sinks_ready(self, timeout: float = 120.0) -> bool:
        """Wait until every sink replica has subscribed (printed ``ready`` in its log)."""

        def ready() -> bool:
            logs = [self.work / f"{v}.log" for v in self.sink_names]
            return all(p.exists() and "ready" in p.read_text(errors="replace") for p in logs)

        return wait_until(ready, timeout, step=0.2)

    def kill(self, victim: str) -> None:
        """SIGKILL one component; it stays down until ``restart`` (the supervisor leaves it alone)."""
        with self._lock:
            self._down.add(victim)
            if victim == "nats":
                kill_nats(self.nats)
            elif victim == "scorer":
                assert self.scorer is not None
                kill_scorer(self.scorer)
                self.scorer.proc = None
            elif victim == "featurizer":
                assert self.featurizer is not None
                self.featurizer.kill()
            else:
                sink = self.sinks[int(victim[4:] or 0)]
                assert sink is not None
                sink.kill()

    def restart(self, victim: str) -> None:
        """Start a killed component again; if that fails the supervisor keeps trying."""
        with self._lock:
            self._down.discard(victim)
            try:
                self._start(victim)
            except Exception:
                self.restart_errors[victim] += 1

    def alive(self, victim: str) -> bool:
        proc = self._proc(victim)
        return proc is not None and proc.poll() is None

    def _supervise(self) -> None:
        while not self._stop.wait(0.1):
            with self._lock:
                for victim in self.victims:
                    if victim in self._down or self.alive(victim) or self._stop.is_set():
                        continue
                    if self._proc(victim) is not None:  # it was running and exited by itself
                        self.crashes[victim] += 1
                    try:
                        self._start(victim)
                    except Exception:
                        self.restart_errors[victim] += 1

    # ---- shutdown ----------------------------------------------------------------------------
    def close(self) -> None:
        """Stop the supervisor, then the sink, scorer and NATS gracefully; SIGKILL any process left."""
        self._stop.set()
        if self._supervisor is not None:
            self._supervisor.join(timeout=30)
        with self._lock:
            steps = [
                lambda: self.featurizer.stop() if self.featurizer is not None and self.alive("featurizer") else None,
                *(
                    (lambda s=s: s.stop())
                    for v, s in zip(self.sink_names, self.sinks, strict=True)
                    if s is not None and self.alive(v)
                ),
                lambda: self.scorer.stop() if self.scorer is not None else None,
                lambda: self.nats.stop(),
            ]
            for step in steps:
                try:
                    step()
                except Exception:  # keep stopping the rest; the sweep below kills what is left
                    pass
            for proc in self._spawned:
                if proc.poll() is None:
                    proc.kill()
                    try:
                        proc.wait(10)
                    except subprocess.TimeoutExpired:
                        pass

    def leftovers(self) -> list[int]:
        """Pids of processes this pipeline started that are still running (none after ``close``)."""
        return [p.pid for p in self._spawned if p.poll() is None]

    def __enter__(self) -> Pipeline:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()


def wait_until(pred, timeout: float, step: float = 0.1) -> bool:
    """Poll ``pred`` until it is true or ``timeout`` passes; return its last value."""
    deadline = time.monotonic() + timeout
    while not (ok := pred()) and time.monotonic() < deadline:
        time.sleep(step)
    return ok
