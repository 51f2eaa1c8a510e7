"""Start and stop a real local Prefect server (``prefect server start``) on a loopback port.

``make demo``, ``mps up`` and tests use the same launcher: the server's state (SQLite database,
logs) lives under ``home`` (its ``PREFECT_HOME``), analytics are off, and the UI is served beside
the API unless asked otherwise. Unlike Prefect's ephemeral server, this one runs the scheduler and
the other services, so deployments' schedules and triggers fire::

    with PrefectServer(state_dir / "prefect") as server, server.connected():
        my_flow()              # recorded in the server; browse it at server.ui_url
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from core.errors import ServiceError
from mps.processes import free_port, terminate

# Settings the parent may carry that would point the server at someone else's database or API.
_INHERITED = (
    "PREFECT_API_URL",
    "PREFECT_SERVER_DATABASE_CONNECTION_URL",
    "PREFECT_API_DATABASE_CONNECTION_URL",
    "PREFECT_PROFILES_PATH",
)


class PrefectServer:
    """A ``prefect server start`` subprocess with its own ``PREFECT_HOME``; a context manager.

    ``startup_timeout`` bounds the wait for ``GET /api/health`` (the server needs 20-90 s to
    migrate its database and start on a busy 2-core machine). The server's output goes to
    ``<home>/server.log``.
    """

    def __init__(
        self,
        home: str | Path,
        port: int | None = None,
        *,
        host: str = "127.0.0.1",
        ui: bool = True,
        startup_timeout: float = 180.0,
        database_url: str | None = None,
    ) -> None:
        self.home = Path(home)
        self.host = host
        self.port = port or free_port(host)
        self.ui = ui
        self.startup_timeout = startup_timeout
        self.database_url = database_url
        self.log_path = self.home / "server.log"
        self.startup_s: float | None = None
        self._proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def api_url(self) -> str:
        """The value for ``PREFECT_API_URL``."""
        return f"{self.url}/api"

    @property
    def ui_url(self) -> str | None:
        return self.url if self.ui else None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def environment(self) -> dict[str, str]:
        """The server process's environment: this process's, with the server's own Prefect settings."""
        env = {k: v for k, v in os.environ.items() if k not in _INHERITED}
        env.update(
            PREFECT_HOME=str(self.home),
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            PREFECT_API_URL=self.api_url,
            PREFECT_UI_ENABLED=str(self.ui).lower(),
        )
        if self.database_url:
            env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = self.database_url
        return env

    def healthy(self, timeout: float = 2.0) -> bool:
        """Return True when ``GET /api/health`` answers 200."""
        try:
            with urllib.request.urlopen(f"{self.api_url}/health", timeout=timeout) as resp:
                return resp.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def start(self) -> PrefectServer:
        """Start the server and wait until its health endpoint answers; raise ServiceError if it does not."""
        if self._proc is not None and self._proc.poll() is None:
            return self
        self.home.mkdir(parents=True, exist_ok=True)
        cmd = [
            str(Path(sys.executable).parent / "prefect"),
            "server",
            "start",
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--analytics-off",
            "--ui" if self.ui else "--no-ui",
        ]
        t0 = time.monotonic()
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                cmd,
                env=self.environment(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            self._wait_healthy(t0 + self.startup_timeout)
        except ServiceError:
            self.stop()
            raise
        self.startup_s = time.monotonic() - t0
        return self

    def _wait_healthy(self, deadline: float) -> None:
        assert self._proc is not None, "start() launches the server before waiting on it"
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise ServiceError(
                    f"prefect server exited with code {self._proc.returncode} before it was healthy;"
                    f" log {self.log_path}:\n{self._log_tail()}"
                )
            if self.healthy():
                return
            time.sleep(0.5)
        raise ServiceError(
            f"prefect server on {self.url} not healthy within {self.startup_timeout:.0f}s;"
            f" log {self.log_path}:\n{self._log_tail()}"
        )

    def _log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    def stop(self, timeout: float = 20.0) -> None:
        """Stop the server: SIGTERM, then SIGKILL if it has not exited within ``timeout``."""
        proc, self._proc = self._proc, None
        if proc is not None:
            terminate(proc, timeout)

    def wait(self) -> None:
        """Block until Ctrl-C or until the server exits (to keep the UI up for a user)."""
        try:
            while self._proc is not None and self._proc.poll() is None:
                time.sleep(1)
        except KeyboardInterrupt:
            pass

    @contextmanager
    def connected(self) -> Iterator[PrefectServer]:
        """Point this process's Prefect client at the server; flush logs and events to it on exit."""
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with temporary_settings({PREFECT_API_URL: self.api_url}):
            try:
                yield self
            finally:
                _drain_workers()

    def __enter__(self) -> PrefectServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _drain_workers() -> None:
    """Send the flow-run logs and events still queued in this process before the server goes away."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (APILogWorker, EventsWorker):
        worker.drain_all(timeout=10, at_exit=False)
