"""Locate, build and run the Rust streaming featurizer (``serving-rs``'s ``mps-featurizer``) as a child process.

Exchange calendars live in Python, so the sessions the featurizer needs (seconds since the open and
to the close, which ticks are in a session) are written here as a JSON file it reads at start:
``{"calendar": "XNYS", "start": ns, "end": ns, "sessions": [[open_ns, close_ns], ...]}``.
Used by ``mps featurizer --engine rust``, the parity tests and ``benchmarks/streaming_features.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
from datetime import UTC, datetime
from pathlib import Path

from core.errors import ServiceError
from mps.processes import BinaryProcess, start_until_ready
from mps.scorer_process import release_binary

SESSIONS_CACHE = Path.home() / ".cache" / "mps" / "sessions"


def featurizer_binary(build: bool = True) -> Path:
    """Return the featurizer's release binary (``MPS_FEATURIZER_BIN`` overrides), building it if missing."""
    return release_binary("mps-featurizer", "MPS_FEATURIZER_BIN", build)


def write_sessions(first_year: int, last_year: int, calendar: str | None = None, path: Path | None = None) -> Path:
    """Write the sessions of ``calendar`` (default: the tick features') in [first_year, last_year]; cached."""
    from feature_store.tick.events import DEFAULT_CALENDAR
    from lakehouse import calendars

    calendar = calendars.canonical(calendar or DEFAULT_CALENDAR)
    if last_year < first_year:
        raise ServiceError(f"sessions: last year {last_year} before first year {first_year}")
    target = path or SESSIONS_CACHE / f"{calendar.replace('/', '_')}_{first_year}_{last_year}.json"
    if path is None and target.is_file():
        return target
    start, end = datetime(first_year, 1, 1, tzinfo=UTC), datetime(last_year + 1, 1, 1, tzinfo=UTC)
    frame = calendars.sessions(calendar, start, end)
    opens = frame["open"].dt.epoch("ns").to_list()
    closes = frame["close"].dt.epoch("ns").to_list()
    body = {
        "calendar": calendar,
        "start": int(start.timestamp()) * 10**9,
        "end": int(end.timestamp()) * 10**9,
        "sessions": [[o, c] for o, c in zip(opens, closes, strict=True)],
    }
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(body))
    tmp.replace(target)
    return target


def default_sessions() -> Path:
    """Sessions from 2000 to next year: what ``mps featurizer --engine rust`` passes."""
    return write_sessions(2000, datetime.now(UTC).year + 1)


class FeaturizerProcess(BinaryProcess):
    """``mps-featurizer`` against a NATS URL; a context manager that stops it with SIGTERM."""

    def __init__(
        self,
        nats_url: str,
        sessions: Path,
        *,
        consume: str = "jetstream",
        idle_exit: float | None = None,
        heartbeat_lateness: float | None = None,
        publish_jetstream: bool = False,
        stats: Path | None = None,
        latencies: bool = False,
        checkpoint_every: float | None = None,
        orphan_sweep: float | None = None,
        log_path: Path | None = None,
    ) -> None:
        self.args = [str(featurizer_binary()), "--nats", nats_url, "--sessions", str(sessions), "--consume", consume]
        if idle_exit is not None:
            self.args += ["--idle-exit", str(idle_exit)]
        if heartbeat_lateness is not None:
            self.args += ["--heartbeat-lateness", str(heartbeat_lateness)]
        if publish_jetstream:
            self.args.append("--publish-jetstream")
        if stats is not None:
            self.args += ["--stats", str(stats), *(["--latencies"] if latencies else [])]
        if checkpoint_every is not None:  # 0: never (a restart replays from the session open)
            self.args += ["--checkpoint-every", str(checkpoint_every)]
        if orphan_sweep is not None:  # seconds between sweeps of checkpoint chunks no object names
            self.args += ["--orphan-sweep", str(orphan_sweep)]
        self.log_path = log_path
        self.stdout_lines: list[str] = []
        self._done: threading.Thread | None = None

    def start(self, timeout: float = 60.0) -> FeaturizerProcess:
        """Start and wait for the ``ready`` line (streams ensured, checkpoint read, consuming)."""
        self.proc, self._done = start_until_ready(
            "featurizer", self.args, self.log_path, self.stdout_lines, timeout=timeout
        )
        return self

    def wait(self, timeout: float = 120.0) -> dict:
        """Wait for an exit on its own (``idle_exit``); return its counts."""
        if self.proc is None:
            raise ServiceError("featurizer is not running")
        try:
            self.returncode = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            self.stop()
            raise ServiceError(f"featurizer still running after {timeout} s") from exc
        self.proc = None
        return self.counts()

    def counts(self) -> dict:
        """The ``counts`` line the binary printed when it ended, flattened (service and featurizer counts)."""
        if self._done is not None:
            self._done.join(timeout=5)
        for line in reversed(self.stdout_lines):
            if line.startswith("counts "):
                raw = json.loads(line[len("counts ") :])
                return {**raw["service"], **raw["featurizer"], "ended": raw["ended"]}
        raise ServiceError(f"featurizer printed no counts (exit {self.returncode}): {self.stdout_lines[-5:]}")

    def __enter__(self) -> FeaturizerProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
