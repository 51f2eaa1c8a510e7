"""Locate, build and run the Rust scorer binary (serving-rs) as a child process.

Used by tests, benchmarks and the service launcher. The scorer loads the ONNX Runtime that ships
inside the installed ``onnxruntime`` wheel (one ORT for Python and Rust); ``ort_library()`` finds it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from core.errors import ServiceError
from mps.processes import BinaryProcess, start_until_ready

REPO_ROOT = Path(__file__).resolve().parent.parent
CRATE_DIR = REPO_ROOT / "serving-rs"
DEFAULT_TARGET_DIR = Path.home() / ".cache" / "mps" / "cargo-target"


def ort_library() -> Path:
    """Path of libonnxruntime.so.1.* inside the installed onnxruntime wheel."""
    import onnxruntime

    capi = Path(onnxruntime.__file__).parent / "capi"
    libs = sorted(capi.glob("libonnxruntime.so.1*"))
    if not libs:
        raise ServiceError(f"no libonnxruntime.so.1* in {capi}; reinstall the onnxruntime wheel")
    return libs[-1]


def target_dir() -> Path:
    return Path(os.environ.get("CARGO_TARGET_DIR", DEFAULT_TARGET_DIR))


def release_binary(name: str, override_env: str, build: bool = True) -> Path:
    """Return serving-rs's release binary ``name`` (``override_env`` names a path that wins), building it
    with cargo (offline-capable) if it is missing."""
    override = os.environ.get(override_env)
    if override:
        return Path(override)
    binary = target_dir() / "release" / name
    if binary.is_file() or not build:
        return binary
    env = {**os.environ, "CARGO_TARGET_DIR": str(target_dir())}
    proc = subprocess.run(
        ["cargo", "build", "--release", "--bin", name], cwd=CRATE_DIR, env=env, capture_output=True, text=True
    )
    if proc.returncode != 0 or not binary.is_file():
        raise ServiceError(f"cargo build of {name} failed:\n{proc.stderr[-4000:]}")
    return binary


def scorer_binary(build: bool = True) -> Path:
    """Return the scorer's release binary (``MPS_SCORER_BIN`` overrides), building it if missing."""
    return release_binary("mps-scorer", "MPS_SCORER_BIN", build)


class ScorerProcess(BinaryProcess):
    """The Rust scorer running against a NATS URL; a context manager that stops it with SIGTERM."""

    def __init__(
        self,
        nats_url: str,
        *,
        model_name: str = "tick_tiny",
        model: str | Path | None = None,
        mode: str = "jetstream",
        durable: str | None = None,
        http: str = "127.0.0.1:0",
        max_batch: int = 64,
        streams: bool = True,
        sizing: str | Path | None = None,
        extra: list[str] | None = None,
        log_path: str | Path | None = None,
    ) -> None:
        self.args = [
            str(scorer_binary()),
            "--nats",
            nats_url,
            "--model-name",
            model_name,
            "--mode",
            mode,
            "--ort-lib",
            str(ort_library()),
            "--http",
            http,
            "--max-batch",
            str(max_batch),
        ]
        if model:
            self.args += ["--model", str(model)]
        if durable:
            self.args += ["--durable", durable]
        if sizing:
            self.args += ["--sizing", str(sizing)]
        if not streams:
            self.args.append("--no-streams")
        self.args += extra or []
        self.log_path = Path(log_path) if log_path else None
        self.http_addr: str | None = None
        self.stdout_lines: list[str] = []

    def start(self, timeout: float = 60.0) -> ScorerProcess:
        """Start and wait for the `ready` line (model loaded, subscriptions live)."""

        def on_line(line: str) -> None:
            if line.startswith("http listening on "):
                self.http_addr = line.rsplit(" ", 1)[-1]

        self.proc, _ = start_until_ready("scorer", self.args, self.log_path, self.stdout_lines, on_line, timeout)
        return self

    @property
    def url(self) -> str:
        if not self.http_addr:
            raise ServiceError("scorer has no HTTP address")
        return f"http://{self.http_addr}"

    def __enter__(self) -> ScorerProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


if __name__ == "__main__":  # print what a Makefile or shell needs
    print(ort_library() if sys.argv[1:] == ["ort-lib"] else scorer_binary())
