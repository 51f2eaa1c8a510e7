"""Child processes of the service launchers (NATS, Prefect, the scorer): ports and shutdown."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

from core.errors import ServiceError


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def terminate(proc: subprocess.Popen, timeout: float) -> int | None:
    """Stop ``proc`` gracefully: SIGTERM, then SIGKILL if it has not exited within ``timeout``."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)
    return proc.returncode


def start_until_ready(
    what: str,
    args: list[str],
    log_path: Path | None,
    lines: list[str],
    on_line: Callable[[str], None] = lambda _: None,
    timeout: float = 60.0,
) -> tuple[subprocess.Popen, threading.Thread]:
    """Start a serving-rs binary and wait for its ``ready`` line on stdout; stderr goes to ``log_path``.

    Every stdout line is appended to ``lines`` and passed to ``on_line`` by a reader thread (returned
    with the process). Exiting or ``timeout`` before ``ready`` stops it and raises with the log's tail.
    """
    stderr = open(log_path, "ab") if log_path else subprocess.DEVNULL
    env = {**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "info")}
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=stderr, text=True, env=env)
    ready = threading.Event()

    def pump() -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.strip()
            lines.append(line)
            on_line(line)
            if line == "ready":
                ready.set()

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout
    while not ready.wait(0.05):
        if proc.poll() is not None or time.monotonic() > deadline:
            code = proc.poll()
            terminate(proc, 20.0)
            log = log_path.read_text()[-3000:] if log_path and log_path.exists() else ""
            raise ServiceError(f"{what} did not become ready (exit {code}); args {args}\n{log}")
    return proc, reader


class BinaryProcess:
    """A serving-rs binary run by a launcher: holds the process and its exit code; ``stop`` ends it."""

    proc: subprocess.Popen | None = None
    returncode: int | None = None

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM, wait for the graceful exit, return its code (SIGKILL after ``timeout``)."""
        proc, self.proc = self.proc, None
        if proc is None:
            return self.returncode
        self.returncode = terminate(proc, timeout)
        return self.returncode
