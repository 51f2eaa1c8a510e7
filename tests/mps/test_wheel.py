"""The built wheel works outside the repository: installed into a fresh virtual environment in a
temporary directory, `mps` finds its packaged profiles, strategy and security master through
importlib.resources, ingests simulated data into a temporary lake and queries it with SQL.

Dependencies come from the lock file (uv's cache makes this quick once `make test` has synced).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]  # tests may know the checkout; the package must not


def _uv_command() -> list[str]:
    """uv as `make env` installed it: on PATH, or as a module of the interpreter the venv was made from."""
    if shutil.which("uv"):
        return [shutil.which("uv")]
    for python in (sys.executable, getattr(sys, "_base_executable", sys.executable)):
        if subprocess.run([python, "-m", "uv", "--version"], capture_output=True).returncode == 0:
            return [python, "-m", "uv"]
    pytest.fail("uv is needed to build and install the wheel (make env installs it)")


def _uv(*args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    proc = subprocess.run([*_uv_command(), *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"uv {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh venv outside the repository with the wheel and its locked dependencies installed."""
    work = tmp_path_factory.mktemp("wheel")
    _uv("build", "--wheel", "--out-dir", str(work / "dist"), cwd=REPO)
    (wheel,) = (work / "dist").glob("mps-*.whl")
    req = _uv("export", "--frozen", "--no-dev", "--no-emit-project", "--no-hashes", "-q", cwd=REPO).stdout
    (work / "requirements.txt").write_text(req)
    _uv("venv", "-q", str(work / "venv"), "--python", sys.executable, cwd=work)
    _uv(
        "pip",
        "install",
        "-q",
        "--link-mode",
        "hardlink",
        "--python",
        str(work / "venv" / "bin" / "python"),
        "-r",
        str(work / "requirements.txt"),
        str(wheel),
        cwd=work,
    )
    return work


def mps(work: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    proc = subprocess.run(
        [str(work / "venv" / "bin" / "mps"), *args], cwd=work, env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, f"mps {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def test_installed_wheel_runs_outside_the_repository(installed):
    work = installed
    site = subprocess.run(
        [str(work / "venv" / "bin" / "python"), "-c", "import core.resources as r; print(r.config_dir())"],
        cwd=work,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert Path(site).is_relative_to(work / "venv") and not Path(site).is_relative_to(REPO)

    assert "ingest" in mps(work, "--help").stdout
    config = mps(work, "config").stdout
    assert '"name": "local"' in config and str(work / ".mps" / "lake") in config

    lake = work / "lake"
    mps(
        work,
        "ingest",
        "simulator",
        "--lake",
        str(lake),
        "-P",
        "symbols=[SIM1:SIM]",
        "-P",
        "session_minutes=5",
        "-P",
        "trades_per_day=20000",
    )
    out = mps(
        work,
        "sql",
        "--lake",
        str(lake),
        "--format",
        "csv",
        "SELECT count(*) AS n, count(DISTINCT source) AS vendors FROM bronze.trades WHERE symbol_id = 'SIM1:SIM'",
    ).stdout
    n, vendors = (int(x) for x in out.strip().splitlines()[-1].split(","))
    assert n > 0 and vendors >= 2
    assert (lake / "bronze" / "trades" / "_delta_log").is_dir()
